"""dvc.yaml lists, for every stage, the library code its script runs (directly or through other genda modules), as
derived by genda.pipeline.deps from the imports, so that editing a module reruns exactly the stages that use it.
Only the declared INFRA modules are left out, and those must not be able to change an output."""
from __future__ import annotations

import pytest

from conftest import ROOT
from genda.pipeline import deps


def test_dvc_yaml_lists_exactly_the_code_each_stage_runs():
    problems = deps.check()
    assert not problems, "\n".join(problems) + "\n(run: python -m genda.pipeline.deps --write)"


def test_the_check_sees_a_missing_and_an_excess_dep(tmp_path):
    # a dvc.yaml that forgot a module the stage runs and lists one it does not: both named
    text = (ROOT / "dvc.yaml").read_text()
    broken = text.replace("        - src/genda/pipeline/plots.py\n        - features/da/${item}",
                          "        - src/genda/pipeline/manifest.py\n        - features/da/${item}", 1)
    assert broken != text
    (tmp_path / "dvc.yaml").write_text(broken)
    problems = deps.check(tmp_path / "dvc.yaml")
    assert any("tsne runs ['src/genda/pipeline/plots.py']" in p for p in problems), problems
    assert any("tsne lists ['src/genda/pipeline/manifest.py']" in p for p in problems), problems


def test_import_closure_follows_function_level_imports(tmp_path):
    # the walker sees imports inside functions (stages import torch-heavy modules late), transitively
    s = tmp_path / "s.py"
    s.write_text("def main():\n    from genda.da.evaluate import evaluate_pair\n")
    files = deps.closure(s)
    assert {"src/genda/da/evaluate.py", "src/genda/da/adabn.py", "src/genda/da/train.py",
            "src/genda/runtime/precision.py", "src/genda/rng.py", "src/genda/data/tensors.py"} <= files
    assert not any(f.startswith("src/genda/runtime/checkpoint") for f in files)  # INFRA: listed, not a dep


def test_a_folder_dep_never_holds_an_infra_module():
    # DVC hashes a folder whole: a folder dep that held tracking.py would rerun stages on a logging edit
    for stage, want in deps.wanted_deps().items():
        for d in want:
            if (ROOT / d).is_dir():
                assert not any(deps.is_infra(p.relative_to(ROOT).as_posix()) for p in (ROOT / d).rglob("*.py")), d


# what can change an output: seeding and drawing random numbers, image <-> tensor conversion, metric files
OUTPUT_MAKERS = ("manual_seed(", "np.random.seed(", "torch.rand(", "torch.randn(", "torch.uint8", "write_metrics",
                 "save_image", "environment(")


@pytest.mark.parametrize("infra", sorted(deps.INFRA))
def test_infra_modules_make_no_output(infra):
    # the old layout listed runtime.py as infrastructure although it seeded every generator and converted every
    # saved PNG; those moved to genda.rng / genda.data.tensors, and no INFRA module may do such things again
    path = ROOT / infra
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    assert files, infra
    for f in files:
        text = f.read_text()
        found = [m for m in OUTPUT_MAKERS if m in text and not (m == "environment(" and "tracking" in f.name)]
        assert not found, f"{f.relative_to(ROOT)} is INFRA but contains {found}"
