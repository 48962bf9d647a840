"""The headline results (genda.pipeline.summary, stage `summary`): small per-method metrics files that keep
`dvc metrics show` readable, and the README's results table, generated and in sync."""
import json

import pytest

from conftest import ROOT
from genda.config import load_params
from genda.errors import DataError
from genda.pipeline import summary


def _fixture(root):
    m = root / "metrics"
    (m / "gan" / "g1").mkdir(parents=True)
    (m / "cond").mkdir()
    (m / "da").mkdir()
    (m / "classifier.json").write_text(json.dumps({"test_acc": 0.97214}))
    (m / "gan" / "g1" / "eval.json").write_text(json.dumps(
        {"fid": 10.1303, "kid_mean": 0.011675, "is_mean": 5.9978, "face_rate": 0.56, "extractor": "x"}))
    (m / "cond" / "acgan.json").write_text(json.dumps({"accuracy": 0.911, "digit_fid": 12.0986, "fid": 3.04}))
    (m / "cond" / "attr.json").write_text(json.dumps({"attr_accuracy": 0.83, "fid": 116.03, "face_rate": 0.024}))
    (m / "da" / "a-b.json").write_text(json.dumps({"dann": {"target_acc": 0.95543, "source_acc": 0.869},
                                                   "source_only": {"target_acc": 0.9, "source_acc": 0.86}}))
    return {"face_gans": {"g1": {}}, "cond_gens": {"acgan": {}, "attr": {}},
            "da": {"pairs": ["a-b"], "settings": ["source_only", "dann"], "seeds": [0, 1, 2]}}


def test_rows_and_table_from_a_fixture(tmp_path):
    params = _fixture(tmp_path)
    r = summary.write(params, tmp_path, tmp_path / "summary")
    assert r == {"classifier": {"acc": 0.9721},
                 "gan/g1": {"fid": 10.13, "kid": 0.0117, "is": 6.0, "faces": 0.56},
                 "cond/acgan": {"acc": 0.911, "fid": 12.1},  # digits: the classifier-feature FID
                 "cond/attr": {"acc": 0.83, "fid": 116.03, "faces": 0.024},
                 "da/a-b/source_only": {"acc": 0.9, "src": 0.86},
                 "da/a-b/dann": {"acc": 0.9554, "src": 0.869}}
    assert json.loads((tmp_path / "summary/metrics/da/a-b/dann.json").read_text()) == {"acc": 0.9554, "src": 0.869}
    md = (tmp_path / "summary/table.md").read_text()
    assert "| g1 | 10.13 | 0.0117 | 6.00 | 56.0 % |" in md
    assert "| acgan | 91.1 % | 12.10 | – |" in md and "| attr | 83.0 % | 116.03 | 2.4 % |" in md
    assert "| a-b | dann | 95.5 % | 86.9 % |" in md and "mean over 3 seeds" in md


def test_a_stale_row_file_is_removed_and_a_missing_input_is_named(tmp_path):
    params = _fixture(tmp_path)
    (tmp_path / "summary/metrics/gan").mkdir(parents=True)
    (tmp_path / "summary/metrics/gan/old.json").write_text("{}")
    summary.write(params, tmp_path, tmp_path / "summary")
    assert not (tmp_path / "summary/metrics/gan/old.json").exists()
    (tmp_path / "metrics/cond/acgan.json").unlink()
    with pytest.raises(DataError, match="metrics/cond/acgan.json is missing"):
        summary.rows(params, tmp_path)
    params["da"]["settings"].append("dsn")
    (tmp_path / "metrics/cond/acgan.json").write_text("{}")
    with pytest.raises(DataError, match="has no setting 'dsn'"):
        summary.rows(params, tmp_path)


def test_committed_summary_matches_the_committed_metrics_and_the_readme():
    params = load_params(ROOT / "params.yaml", check_paths=False)
    rows = summary.rows(params, ROOT)
    for key, values in rows.items():
        assert json.loads((ROOT / "summary/metrics" / f"{key}.json").read_text()) == values, key
    table = (ROOT / "summary/table.md").read_text()
    assert table == summary.table(params, rows)
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- results:begin -->", 1)[1].split("<!-- results:end -->", 1)[0]
    assert block.strip() == table.strip(), "README's results table differs from summary/table.md: copy it"


def test_dvc_metrics_show_fits_a_terminal():
    # the committed metrics as `dvc metrics show` prints them: one row per file, one column per key
    import subprocess

    from conftest import VENV_BIN

    out = subprocess.run([str(VENV_BIN / "dvc"), "metrics", "show"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    lines = [line for line in out.rstrip("\n").splitlines()  # the default profile's rows (real/ has its own)
             if not line.startswith("real/")]
    assert len(lines) <= 40 and max(map(len, lines)) <= 160, out
    assert any(line.startswith("summary/metrics/gan/dcgan_tricks.json") for line in lines), out


def test_headline_rows_name_every_number_with_its_seeds_wall_time_and_stage(tmp_path):
    params = _fixture(tmp_path)
    env = {"cpu": "Xeon", "cpu_isa": "amx_bf16", "threads": 1, "device": "cpu"}
    d = json.loads((tmp_path / "metrics/da/a-b.json").read_text())
    d["dann"].update(target_acc=0.9, target_acc_std=0.02, n_seeds=3,
                     per_seed={"0": {"target_acc": 0.88}, "1": {"target_acc": 0.9}, "2": {"target_acc": 0.92}})
    d["env"] = env
    (tmp_path / "metrics/da/a-b.json").write_text(json.dumps(d))
    timing = {f"seed{k}.pt": {"train_seconds": 60.0 * (k + 1), "curve_wall_s": []} for k in (0, 1, 2)}
    (tmp_path / "metrics/da/a-b/dann").mkdir(parents=True)
    (tmp_path / "metrics/da/a-b/dann/timing.json").write_text(json.dumps(timing))
    params["summary"] = {"targets": {"da/a-b/best": 0.95, "faces/g1/fid": 12.0}}
    h = summary.headline(params, tmp_path)
    rows = h["rows"]
    assert set(rows) == {"cond/classifier/real_acc", "faces/g1/fid", "faces/g1/face_rate", "cond/acgan/accuracy",
                         "cond/attr/attr_accuracy", "cond/attr/face_rate", "da/a-b/source_only", "da/a-b/dann", "da/a-b/best"}
    assert rows["da/a-b/dann"] == {"value": 0.9, "std": 0.02, "n_seeds": 3, "train_wall_s": 360.0,
                                   "per_seed": {"0": 0.88, "1": 0.9, "2": 0.92}, "stage": "train_da@a-b-dann",
                                   "machine": "Xeon (amx_bf16; 1 threads)"}
    # the best adapting method (source-only and target-only are the bounds, never "best")
    assert rows["da/a-b/best"]["method"] == "dann" and rows["da/a-b/best"]["value"] == 0.9
    assert (rows["da/a-b/best"]["target"], rows["da/a-b/best"]["met"]) == (0.95, False)
    assert (rows["faces/g1/fid"]["target"], rows["faces/g1/fid"]["met"]) == (12.0, True)  # FID: at most
    assert "target" not in rows["da/a-b/dann"]
    assert rows["faces/g1/fid"]["value"] == 10.1303 and rows["faces/g1/face_rate"]["value"] == 0.56
    assert h["total_train_wall_s"] == 360.0
    md = summary.headline_table(h)
    assert "| `da/a-b/dann` | 90.0 % | – | 90.0 % ± 2.0 (3 seeds) | 6.0 min | `train_da@a-b-dann` |" in md
    assert "| `da/a-b/best` (dann) | 90.0 % | ≥ 95.0 % ✗ |" in md and "| `faces/g1/fid` | 10.13 | ≤ 12.00 ✓ |" in md
    assert "0.10 h" in md
    assert "| stage | machine |" in md and "| `da/a-b/dann` | 90.0 % |" in md  # rows measured on two machines
    assert "Xeon (amx_bf16; 1 threads) |" in md and "unknown |" in md and "Every row measured on" not in md
    for r in h["rows"].values():  # one machine measured every row: said once under the table, no column
        r["machine"] = "EPYC (avx512_bf16; 2 threads)"
    md = summary.headline_table(h)
    assert "Every row measured on: EPYC (avx512_bf16; 2 threads)." in md and "machine |" not in md
    assert "| `faces/g1/fid` | 10.13 | ≤ 12.00 ✓ | – | – | `evaluate_gan@g1` |\n" in md
    params["summary"]["targets"]["da/a-b/dnn"] = 0.9  # a typo: no such row
    with pytest.raises(DataError, match="names 'da/a-b/dnn', which is no result row"):
        summary.headline(params, tmp_path)


HEADLINE_33 = ("da/mnistm-usps/dann", "da/mnistm-usps/best", "da/mnist-mnistm/dann", "cond/acgan/accuracy",
               "cond/ddpm/accuracy", "faces/dcgan_tricks/face_rate", "faces/dcgan_tricks/fid", "faces/dcgan/fid")


def test_real_profile_headline_is_committed_complete_and_in_the_readme():
    # issue 33: the real profile's results table, generated by its summary stage, is the README's real-data table
    h = json.loads((ROOT / "real/summary/headline.json").read_text())
    assert h["total_wall_s"] > 3600 and h["stage_wall_s"], "the profile's wall time per stage (real/walls/)"
    for key in HEADLINE_33:
        r = h["rows"][key]
        assert isinstance(r["value"], float) and r["stage"] and r["machine"], key
        assert key.endswith("/fid") or 0 < r["value"] <= 1, key  # accuracies and rates as fractions
        if key.startswith("da/"):
            assert r["n_seeds"] == 3 and len(r["per_seed"]) == 3, key
    assert all("met" in h["rows"][k] for k in load_params(ROOT / "real/params.yaml", check_paths=False)
               ["summary"]["targets"])
    md = (ROOT / "real/summary/headline.md").read_text()
    assert md == summary.headline_table(h)
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- real-results:begin -->", 1)[1].split("<!-- real-results:end -->", 1)[0]
    assert block.strip() == md.strip(), "README's real-data table differs from real/summary/headline.md: copy it"


def test_a_target_naming_another_row_compares_on_the_same_run_and_identity_is_lower_better(tmp_path):
    """issue 34: a face GAN's FID at most Method A's on the same run (target = that row's name); attr_acgan's
    identity ratio is a row of its own, a number where lower is better."""
    params = _fixture(tmp_path)
    m = tmp_path / "metrics"
    (m / "gan" / "g2").mkdir()
    (m / "gan" / "g2" / "eval.json").write_text(json.dumps({"fid": 9.5, "face_rate": 0.9, "extractor": "x"}))
    attr = json.loads((m / "cond" / "attr.json").read_text())
    attr.update(identity_ratio=0.41234, identity_feature_space="random-CNN")
    (m / "cond" / "attr.json").write_text(json.dumps(attr))
    params["face_gans"]["g2"] = {}
    params["summary"] = {"targets": {"faces/g2/fid": "faces/g1/fid", "faces/g1/fid": "faces/g2/fid",
                                     "cond/attr/identity_ratio": 0.5}}
    rows = summary.headline(params, tmp_path)["rows"]
    assert rows["faces/g2/fid"]["target"] == 10.1303 and rows["faces/g2/fid"]["met"] is True
    assert rows["faces/g1/fid"]["target"] == 9.5 and rows["faces/g1/fid"]["met"] is False
    assert rows["faces/g2/fid"]["target_row"] == "faces/g1/fid"
    r = rows["cond/attr/identity_ratio"]
    assert (r["value"], r["met"], r["feature_space"]) == (0.4123, True, "random-CNN")
    md = summary.headline_table({"rows": rows, "total_train_wall_s": 0.0})
    assert "| `faces/g2/fid` | 9.50 | ≤ 10.13 (`faces/g1/fid`) ✓ |" in md
    assert "| `cond/attr/identity_ratio` | 0.412 | ≤ 0.50 ✓ |" in md
    params["summary"]["targets"]["faces/g2/fid"] = "faces/g3/fid"
    with pytest.raises(DataError, match="names 'faces/g3/fid', which is no result row"):
        summary.headline(params, tmp_path)


def test_a_face_gan_row_carries_its_train_gan_stage_wall_once(tmp_path):
    """The face GANs write no timing file: the fid row takes the wall its train_gan stage recorded (walls/), the
    face_rate row none, so the total counts it once."""
    params = _fixture(tmp_path)
    (tmp_path / "walls").mkdir()
    (tmp_path / "walls" / "train_gan@g1.json").write_text(json.dumps({"stage": "train_gan@g1", "wall_s": 150.0}))
    h = summary.headline(params, tmp_path)
    assert h["rows"]["faces/g1/fid"]["train_wall_s"] == 150.0
    assert h["rows"]["faces/g1/face_rate"].get("train_wall_s") is None
    assert h["total_train_wall_s"] == 150.0 and h["total_wall_s"] == 150.0
    assert "| `faces/g1/fid` | 10.13 | – | – | 2.5 min | `evaluate_gan@g1` |" in summary.headline_table(h)


def test_a_da_row_names_the_threads_of_its_training_not_of_its_evaluation(tmp_path):
    """A DA row names its train_da stage: the CPU comes from the evaluation's env, the thread count from the training
    stage's wall record; a training recorded on another CPU is named by its wall record."""
    params = _fixture(tmp_path)
    d = json.loads((tmp_path / "metrics/da/a-b.json").read_text())
    d["env"] = {"cpu": "AMD EPYC", "cpu_isa": "avx512_bf16", "threads": 2, "device": "cpu"}
    (tmp_path / "metrics/da/a-b.json").write_text(json.dumps(d))
    (tmp_path / "walls").mkdir()
    for setting, machine in (("dann", "2-core AMD EPYC"), ("source_only", "2-core Intel Xeon")):
        (tmp_path / "walls" / f"train_da@a-b-{setting}.json").write_text(json.dumps(
            {"stage": f"train_da@a-b-{setting}", "wall_s": 60.0, "machine": machine, "threads": "1"}))
    rows = summary.headline(params, tmp_path)["rows"]
    assert rows["da/a-b/dann"]["machine"] == "AMD EPYC (avx512_bf16; 1 threads)"
    assert rows["da/a-b/source_only"]["machine"] == "2-core Intel Xeon (1 threads)"
    (tmp_path / "walls" / "train_da@a-b-dann.json").write_text(json.dumps(  # no thread count recorded
        {"stage": "train_da@a-b-dann", "wall_s": 60.0, "machine": "2-core AMD EPYC", "threads": "default"}))
    assert summary.headline(params, tmp_path)["rows"]["da/a-b/dann"]["machine"] == "AMD EPYC (avx512_bf16; 2 threads)"
    assert rows["cond/acgan/accuracy"]["machine"] == "unknown"  # evaluation rows keep their own env


def test_a_missed_target_is_never_printed_as_its_own_number():
    """84.954 % against a 85 % target is "84.95 % … ✗", not "85.0 % | ≥ 85.0 % ✗"; a clear miss or a met target
    keeps one decimal."""
    rows = {"da/p/dann": {"value": 0.849535, "std": 0.0276, "n_seeds": 3, "target": 0.85, "met": False,
                          "stage": "train_da@p-dann", "machine": "m"},
            "da/p/dsn": {"value": 0.48398, "target": 0.85, "met": False, "stage": "train_da@p-dsn", "machine": "m"},
            "da/p/mt": {"value": 0.85004, "target": 0.85, "met": True, "stage": "train_da@p-mt", "machine": "m"}}
    md = summary.headline_table({"rows": rows, "total_train_wall_s": 0.0})
    assert "| `da/p/dann` | 84.95 % | ≥ 85.0 % ✗ | 84.95 % ± 2.8 (3 seeds) |" in md
    assert "| `da/p/dsn` | 48.4 % | ≥ 85.0 % ✗ |" in md
    assert "| `da/p/mt` | 85.0 % | ≥ 85.0 % ✓ |" in md


def test_a_best_row_prints_its_method_rows_decimals():
    """``da/<pair>/best`` repeats a method's row; where that row needs more decimals (a missed target), the best row,
    which may have no target of its own, prints them too: not "85.0 %" two lines below "84.95 % ✗"."""
    dann = {"value": 0.849535, "std": 0.0276, "n_seeds": 3, "target": 0.85, "met": False, "stage": "s", "machine": "m"}
    rows = {"da/p/dann": dann, "da/p/best": {**{k: v for k, v in dann.items() if k not in ("target", "met")},
                                             "method": "dann"},
            "da/q/mt": {"value": 0.97675, "std": 0.0017, "n_seeds": 3, "stage": "t", "machine": "m"},
            "da/q/best": {"value": 0.97675, "std": 0.0017, "n_seeds": 3, "target": 0.975, "met": True,
                          "method": "mt", "stage": "t", "machine": "m"}}
    md = summary.headline_table({"rows": rows, "total_train_wall_s": 0.0})
    assert "| `da/p/best` (dann) | 84.95 % | – | 84.95 % ± 2.8 (3 seeds) |" in md
    assert "| `da/q/best` (mt) | 97.7 % | ≥ 97.5 % ✓ | 97.7 % ± 0.2 (3 seeds) |" in md
