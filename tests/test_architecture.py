"""The layout of src/genda (docs/architecture.md): no import cycles, layers that point downwards only, a short top
shelf. Imports anywhere in a module count (module level or inside functions)."""
from __future__ import annotations

from conftest import ROOT
from genda.pipeline.deps import imported_files

PKG = ROOT / "src" / "genda"

# docs/architecture.md: a package imports only packages of lower layers (and itself)
LAYERS = [
    {"errors", "choices"},
    {"runtime"},
    {"rng", "config"},
    {"data", "train"},
    {"gan", "da", "metrics", "style"},
    {"cond"},
    {"pipeline"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _module(f) -> str:
    parts = f.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """genda module -> the genda modules it imports (packages' __init__ left out: they only re-export)."""
    graph = {}
    for f in PKG.rglob("*.py"):
        graph[_module(f)] = {_module(g) for g in imported_files(f) if g.name != "__init__.py"} - {_module(f)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_in_genda():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_every_package_is_on_a_layer_and_imports_only_downwards():
    top = {p.stem if p.is_file() else p.name for p in PKG.iterdir()
           if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert top == set(LAYER), f"packages without a layer: {top - set(LAYER)}; layers without a package: " \
                              f"{set(LAYER) - top} (add it to LAYERS and docs/architecture.md)"
    bad = []
    for mod, deps in import_graph().items():
        if mod == "genda":
            continue
        a = mod.split(".")[1]
        for dep in deps:
            b = dep.split(".")[1]
            if a != b and LAYER[b] >= LAYER[a]:
                bad.append(f"{mod} imports {dep} ({a} is layer {LAYER[a]}, {b} layer {LAYER[b]})")
    assert not bad, "\n".join(sorted(bad))


def test_at_most_ten_modules_on_the_top_shelf():
    assert len(list(PKG.glob("*.py"))) <= 10


def test_config_imports_no_torch():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import genda.config, sys; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
