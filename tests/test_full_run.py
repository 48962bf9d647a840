"""benchmarks/realdata/full_run.py (issue 9's full-size run for a GPU): its plan and its summary, without running it
(a `--smoke` run on a CPU takes minutes; the stages it calls are tested end to end elsewhere)."""
from __future__ import annotations

import json
import sys

import pytest

from conftest import ROOT

sys.path[:0] = [str(ROOT / "benchmarks/realdata"), str(ROOT / "benchmarks/tools")]
import full_run  # noqa: E402

from genda.config import validate  # noqa: E402


@pytest.mark.parametrize("smoke", [False, True])
def test_every_arm_is_valid_params_and_keeps_only_the_issue_methods(smoke):
    for arm in full_run.ARMS:
        p = validate(full_run.arm_params(arm, smoke), check_paths=False)
        assert (p["data"]["source"] == "embedded") == smoke
    mu = full_run.arm_params("da_mu", smoke)
    assert mu["data"]["usps_frame"] == "mnist" and mu["da"]["seeds"] == [0, 1, 2]
    assert mu["da"]["settings"] == ["source_only", "dann", "target_only", "mean_teacher"]
    assert list(full_run.arm_params("cond", smoke)["cond_gens"]) == ["acgan", "ddpm"]
    assert list(full_run.arm_params("faces", smoke)["face_gans"]) == ["dcgan", "dcgan_tricks"]
    full = full_run.arm_params("cond", False)
    assert full["cond"]["steps"] == 8000 and full["cond"]["n_feat"] == 128  # the committed full-size recipe
    if smoke:  # per-entry lengths are dropped, so the smoke shrink applies to every generator
        p = full_run.arm_params("cond", True)
        assert p["cond"]["steps"] == 3 and all("steps" not in e for e in p["cond_gens"].values())


def test_jobs_train_every_seed_with_its_own_params_then_evaluate():
    p = full_run.arm_params("da_mu", False)
    train, evals = full_run.jobs_of("da_mu", p)
    assert len(train) == 12 and ("da_mu", "params_seed2.yaml", "train_da.py", "mnistm-usps", "dann") in train
    assert evals == [("da_mu", "params.yaml", "evaluate_da.py", "mnistm-usps")]
    train, evals = full_run.jobs_of("cond", full_run.arm_params("cond", False))
    assert [j[2:] for j in train] == [("train_classifier.py",), ("train_cond.py", "acgan"), ("train_cond.py", "ddpm")]
    assert [j[2:] for j in evals] == [("sample_cond.py", "acgan"), ("evaluate_cond.py", "acgan"),
                                      ("sample_cond.py", "ddpm"), ("evaluate_cond.py", "ddpm")]


def test_summary_entries_carry_value_target_and_provenance(tmp_path):
    def write(rel, obj):
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(obj))

    def da(acc):
        return {"target_acc": acc, "target_acc_std": 0.01, "n_seeds": 3, "target_acc_adabn": acc + 0.01}

    write("da_mu/metrics/da/mnistm-usps.json", {s: da(a) for s, a in
                                                (("source_only", 0.8), ("dann", 0.91), ("target_only", 0.97),
                                                 ("mean_teacher", 0.95))})
    write("da_mm/metrics/da/mnist-mnistm.json", {"source_only": da(0.5), "dann": da(0.78)})
    for g, acc in (("acgan", 0.97), ("ddpm", 0.95)):
        write(f"cond/metrics/cond/{g}.json", {"accuracy": acc, "digit_fid": 1.0, "digit_fid_real_floor": 0.5})
    write("cond/metrics/classifier.json", {"test_acc": 0.99})
    for g, rate in (("dcgan", 0.8), ("dcgan_tricks", 0.92)):
        write(f"faces/metrics/gan/{g}/eval.json", {"face_rate": rate, "fid": 3.0, "fid_real_floor": 0.5,
                                                   "extractor": "x"})
    walls = {f"da_mu/train_da.py/mnistm-usps/dann/seed{s}": 10.0 for s in (0, 1, 2)}
    walls["da_mu/train_da.py/mnistm-usps/source_only/seed0"] = 99.0
    info = {"command": "c", "commit": "abc", "machine": "m", "params": "p"}
    out = full_run.summary_entries(tmp_path, walls, info)
    assert out["da/mnistm-usps/dann"]["value"] == 0.91 and out["da/mnistm-usps/dann"]["target"] == 0.9
    assert out["da/mnistm-usps/dann"]["wall_s"] == 30 and out["da/mnistm-usps/dann"]["usps_frame"] == "mnist"
    assert out["da/mnistm-usps/best"]["setting"] == "mean_teacher" and out["da/mnistm-usps/best"]["target"] == 0.97
    assert out["da/mnist-mnistm/dann"]["target_acc_adabn"] == 0.79 and "usps_frame" not in out["da/mnist-mnistm/dann"]
    assert out["cond/ddpm/accuracy"]["target"] == 0.98 and out["faces/dcgan_tricks/face_rate"]["value"] == 0.92
    assert all(e["commit"] == "abc" and e["machine"] == "m" and e["command"] == "c" for e in out.values())
