"""dvc.yaml lists, for every stage, the library code its script imports (directly or through other genda
modules), so that editing a module reruns the stages that use it. Each such file is a dep of the stage itself:
a dep of an upstream stage is not enough, because the pipeline's outputs are byte-reproducible (model files
keep no wall times, genda.train.timing), so an edit to code that only runs at sampling or evaluation time
retrains the upstream stage to the same bytes and would leave the evaluation's metrics stale.
Infrastructure modules that cannot change a stage's outputs (params plumbing, logging, checkpoint files,
thread setup) are the only exceptions."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# imported by stages but, by design, not deps: editing them must never change a number or an image
INFRA = {
    "src/genda/__init__.py",
    "src/genda/config/schema.py",  # params loading and validation (the params themselves are DVC params)
    "src/genda/config/cond.py",  # merges cond + cond_gens.<name> (both DVC params)
    "src/genda/runtime/stage.py",  # error reporting, metrics-file writing
    "src/genda/runtime/tracking.py",  # MLflow logging
    "src/genda/runtime/checkpoint.py",  # checkpoint files (resume is tested to give identical results)
    "src/genda/errors.py",
    "src/genda/runtime/threads.py",
    "src/genda/runtime/allocator.py",  # where the C heap keeps tensor buffers: same bits (tests/test_allocator.py)
    "src/genda/runtime/distributed.py",  # single-process here; multi-process equivalence is tested
    "src/genda/runtime/device.py",  # device/thread choice, environment record, fingerprints, uint8<->float
}


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
    """The genda files ``script`` imports, transitively; INFRA modules are listed but not followed (what they
    import, e.g. params validation tables, is plumbing too)."""
    todo, seen = [script], set()
    while todo:
        f = todo.pop()
        for g in imported_files(f):
            if g not in seen:
                seen.add(g)
                if str(g.relative_to(ROOT)) not in INFRA:
                    todo.append(g)
    return {str(f.relative_to(ROOT)) for f in seen if is_code(f)}


def _paths(items) -> list[str]:
    return [d if isinstance(d, str) else next(iter(d)) for d in items or []]


def stages() -> list[tuple[str, str, list[str]]]:
    """(name, script, the stage's own deps) for each stage of dvc.yaml."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    body = {name: st.get("do", st) for name, st in spec.items()}
    return [(n, b["cmd"].split()[1], _paths(b.get("deps"))) for n, b in body.items()]


@pytest.mark.parametrize("name,script,deps", stages(), ids=[s[0] for s in stages()])
def test_stage_deps_cover_the_code_it_imports(name, script, deps):
    assert script in deps, f"stage {name}: its script {script} is not a dep"
    covered = lambda f: any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)  # noqa: E731
    missing = sorted(f for f in closure(ROOT / script) if f not in INFRA and not covered(f))
    assert not missing, f"stage {name} runs {missing} but dvc.yaml does not list them as deps"


def test_import_closure_follows_function_level_imports(tmp_path):
    # the walker sees imports inside functions (stages import torch-heavy modules late), transitively
    s = tmp_path / "s.py"
    s.write_text("def main():\n    from genda.da.evaluate import evaluate_pair\n")
    files = closure(s)
    assert {"src/genda/da/evaluate.py", "src/genda/da/adabn.py",
            "src/genda/da/train.py", "src/genda/runtime/precision.py"} <= files
