"""The code dependencies of every DVC stage, derived from the imports of its script.

A stage's outputs can change when any module its script runs changes, so each such module must be a dep of the
stage itself (a dep of an upstream stage is not enough: models are byte-reproducible, so an edit to code that only
runs at sampling or evaluation time retrains upstream to the same bytes and would leave downstream metrics stale).
This module walks the script's ``genda`` imports (module level and inside functions, transitively, with the
packages' ``__init__.py``) and writes the covering list into ``dvc.yaml``: a package folder where every code file
of it is used, single files otherwise.

Only :data:`INFRA` is left out: modules that by construction cannot change a number, an image or a model byte (each
with the test that shows it). They are listed but not followed.

    python -m genda.pipeline.deps            # check: exit 1 and name what dvc.yaml misses or lists in excess
    python -m genda.pipeline.deps --write    # rewrite the src/genda deps of every stage in dvc.yaml
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "src"

# never a dep: editing them must not change a result (why, and the test that shows it)
INFRA = {
    "src/genda/__init__.py": "package marker",
    "src/genda/errors.py": "exception classes",
    "src/genda/config": "validation only: every value a stage reads is a DVC param of the full params file "
                        "(tests/test_params_schema.py: resolved configs equal the committed fixture)",
    "src/genda/runtime/__init__.py": "package marker",
    "src/genda/runtime/stage.py": "error reporting and the hand-off to the fork server",
    "src/genda/runtime/forkserver.py": "a warm stage is bit-identical to a cold one (tests/test_warm.py)",
    "src/genda/runtime/tracking.py": "MLflow logging only",
    "src/genda/runtime/checkpoint.py": "resume is bit-identical to an uninterrupted run (tests/test_resume.py)",
    "src/genda/runtime/threads.py": "thread count from the environment, not from code",
    "src/genda/runtime/allocator.py": "where the C heap keeps buffers: same bits (tests/test_allocator.py)",
    "src/genda/runtime/distributed.py": "single process here; multi-process equivalence is tested "
                                        "(tests/test_distributed.py)",
    "src/genda/runtime/paths.py": "where the project root is",
    "src/genda/runtime/walls.py": "a stage's wall time, written to walls/ (git, never a stage output); the summary "
                                  "lists walls/ itself as a dep",
}


def _rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def is_infra(rel: str) -> bool:
    return any(rel == k or rel.startswith(k + "/") for k in INFRA)


def module_file(name: str) -> Path | None:
    """src path of genda module ``name`` (a module file or a package's __init__.py), None if not genda's."""
    if name != "genda" and not name.startswith("genda."):
        return None
    base = SRC.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.exists():
            return p
    return None


def imported_files(path: Path) -> set[Path]:
    """genda files imported anywhere in ``path`` (module level or inside functions), with their packages'
    __init__.py files, since Python runs those first."""
    out: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                f = module_file(".".join(parts[:i]))
                if f is not None:
                    out.add(f)
    return out


def is_code(f: Path) -> bool:
    """False for a package __init__.py without functions or classes (docstring, re-exports)."""
    tree = ast.parse(f.read_text())
    return f.name != "__init__.py" or any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for n in ast.walk(tree))


def closure(script: Path) -> set[str]:
    """The genda code files ``script`` runs (transitively), without INFRA (listed, not followed)."""
    todo, seen = [script], set()
    while todo:
        for g in imported_files(todo.pop()):
            if g not in seen:
                seen.add(g)
                if not is_infra(_rel(g)):
                    todo.append(g)
    return {_rel(f) for f in seen if is_code(f) and not is_infra(_rel(f))}


def covering(files: set[str]) -> list[str]:
    """The shortest list of folders and files that covers ``files`` and nothing else of src/genda's code: a
    package folder where every code file under it is in ``files`` (so never a folder holding an INFRA module:
    DVC hashes a folder dep whole)."""
    def code_under(folder: Path) -> set[str]:
        return {_rel(f) for f in folder.rglob("*.py") if is_code(f)}

    out, done = [], set()
    for f in sorted(files):
        if f in done:
            continue
        best = f
        folder = (ROOT / f).parent
        while folder != SRC / "genda" and code_under(folder) <= files:
            best = _rel(folder)
            folder = folder.parent
        out.append(best)
        done |= code_under(ROOT / best) if (ROOT / best).is_dir() else {f}
    return sorted(set(out))


def _stages(doc) -> dict:
    return {name: (st["do"] if "do" in st else st) for name, st in doc["stages"].items()}


def wanted_deps() -> dict[str, list[str]]:
    """stage name -> the src/genda deps its script needs."""
    import yaml

    body = _stages(yaml.safe_load((ROOT / "dvc.yaml").read_text()))
    return {name: covering(closure(ROOT / b["cmd"].split()[1])) for name, b in body.items()}


def write(path: Path = ROOT / "dvc.yaml") -> bool:
    """Rewrite the src/genda deps of every stage (right after the script, other deps kept); True if changed."""
    from ruamel.yaml import YAML

    y = YAML()
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    doc = y.load(path.read_text())
    changed = False
    for name, want in wanted_deps().items():
        deps = _stages(doc)[name]["deps"]
        have = [d for d in deps if isinstance(d, str) and d.startswith("src/genda")]
        if have == want:
            continue
        changed = True
        for d in have:
            deps.remove(d)
        at = 1 if deps and isinstance(deps[0], str) and deps[0].startswith("stages/") else 0
        for i, d in enumerate(want):
            deps.insert(at + i, d)
    if changed:
        with path.open("w") as f:
            y.dump(doc, f)
    return changed


def check(path: Path = ROOT / "dvc.yaml") -> list[str]:
    """Problems: per stage, code it runs that dvc.yaml does not list, and listed src/genda deps it does not run."""
    import yaml

    body = _stages(yaml.safe_load(path.read_text()))
    problems = []
    for name, b in body.items():
        deps = [d if isinstance(d, str) else next(iter(d)) for d in b.get("deps") or []]
        script = b["cmd"].split()[1]
        if script not in deps:
            problems.append(f"stage {name}: its script {script} is not a dep")
        run = closure(ROOT / script)
        covered = lambda f: any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)  # noqa: E731
        missing = sorted(f for f in run if not covered(f))
        if missing:
            problems.append(f"stage {name} runs {missing} but dvc.yaml does not list them as deps")
        extra = sorted(d for d in deps if d.startswith("src/genda") and not any(f == d or f.startswith(d + "/")
                                                                                 for f in run))
        if extra:
            problems.append(f"stage {name} lists {extra} as deps but never runs them")
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--write"]:
        print("dvc.yaml rewritten" if write() else "dvc.yaml already in sync")
        return 0
    problems = check()
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
