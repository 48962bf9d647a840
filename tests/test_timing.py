"""Wall times beside the model files (genda.train.timing): the round trip, and the errors that name the file."""
import pandas as pd
import pytest

from genda.errors import DataError
from genda.train.timing import join_wall_s, read_timing, split_curve, write_timing


def test_split_write_read_join_round_trip(tmp_path):
    curve = [{"step": 10, "wall_s": 1.5, "target_acc": 0.2}, {"step": 20, "wall_s": 3.25, "target_acc": 0.4}]
    rows, walls = split_curve(curve)
    assert rows == [{"step": 10, "target_acc": 0.2}, {"step": 20, "target_acc": 0.4}] and walls == [[10, 1.5], [20, 3.25]]
    path = tmp_path / "m/timing.json"
    write_timing(path, "seed0.pt", train_seconds=4.004, curve_wall_s=walls)
    write_timing(path, "seed1.pt", train_seconds=9.0, curve_wall_s=[[10, 2.0], [20, 5.0]])
    write_timing(path, "seed0.pt", train_seconds=4.0, curve_wall_s=walls)  # a rerun replaces its own entry only
    assert read_timing(path, "seed0.pt") == {"train_seconds": 4.0, "wall_s": {10: 1.5, 20: 3.25}}
    assert read_timing(path, "seed1.pt")["train_seconds"] == 9.0
    df = pd.DataFrame({"setting": ["dann"] * 4, "seed": [0, 0, 1, 1], "step": [10, 20, 10, 20], "acc": [.2, .4, .3, .5]})
    out = join_wall_s(df, lambda setting, seed: (path, f"seed{seed}.pt"))
    assert list(out["wall_s"]) == [1.5, 3.25, 2.0, 5.0] and "wall_s" not in df


def test_missing_or_mismatched_timing_is_a_data_error_naming_the_file(tmp_path):
    path = tmp_path / "timing.json"
    with pytest.raises(DataError, match=r"timing\.json: missing"):
        read_timing(path, "model.pt")
    write_timing(path, "model.pt", train_seconds=1.0, curve_wall_s=[[10, 1.0]])
    with pytest.raises(DataError, match=r"timing\.json: no valid timing entry for other\.pt"):
        read_timing(path, "other.pt")
    df = pd.DataFrame({"setting": ["ddpm"], "seed": [0], "step": [20]})
    with pytest.raises(DataError, match=r"timing\.json: no wall time for step 20 of model\.pt"):
        join_wall_s(df, lambda setting, seed: (path, "model.pt"))


def test_curve_table_joins_the_pipeline_layout(tmp_path):
    """metrics/da/curves/<pair>.csv and metrics/cond/curves/<name>.csv get wall_s from the timing files of
    the same metrics/ folder; a CSV that has wall_s already (written before the split) is kept as it is."""
    from genda.train.timing import curve_table

    m = tmp_path / "metrics"
    (m / "da/curves").mkdir(parents=True)
    (m / "cond/curves").mkdir(parents=True)
    pd.DataFrame({"pair": "a-b", "setting": ["dann", "dann"], "seed": [1, 1], "step": [5, 10],
                  "target_acc": [.1, .2]}).to_csv(m / "da/curves/a-b.csv", index=False)
    write_timing(m / "da/a-b/dann/timing.json", "seed1.pt", train_seconds=3, curve_wall_s=[[5, 1.0], [10, 2.5]])
    assert list(curve_table(m / "da/curves/a-b.csv")["wall_s"]) == [1.0, 2.5]
    pd.DataFrame({"setting": ["ddpm"], "seed": [0], "step": [7], "accuracy": [.9]}).to_csv(m / "cond/curves/ddpm.csv",
                                                                                             index=False)
    write_timing(m / "cond/ddpm/timing.json", "model.pt", train_seconds=9, curve_wall_s=[[7, 8.0]])
    assert list(curve_table(m / "cond/curves/ddpm.csv")["wall_s"]) == [8.0]
    pd.DataFrame({"setting": ["x"], "seed": [0], "step": [7], "wall_s": [4.0]}).to_csv(m / "cond/curves/old.csv",
                                                                                          index=False)
    assert list(curve_table(m / "cond/curves/old.csv")["wall_s"]) == [4.0]
    assert curve_table(m / "cond/curves/absent.csv") is None


def test_concurrent_writers_keep_every_entry(tmp_path):
    """Seeds of one setting trained in parallel (benchmarks/realdata/da_runs.py) write one timing file: every process's
    entries survive, and no writer fails on another's temporary file."""
    import subprocess
    import sys

    path = tmp_path / "timing.json"
    code = ("import sys; from genda.train.timing import write_timing\n"
            "for i in range(60): write_timing(sys.argv[1], f'{sys.argv[2]}{i}.pt', train_seconds=i, curve_wall_s=[[i, i]])")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), w], stderr=subprocess.PIPE, text=True)
             for w in ("a", "b", "c")]
    errors = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    entries = __import__("json").loads(path.read_text())
    assert sorted(entries) == sorted(f"{w}{i}.pt" for w in "abc" for i in range(60))
    assert [p.name for p in tmp_path.iterdir()] == ["timing.json"]  # no lock or temporary file left behind


def test_a_corrupt_timing_file_or_foreign_curve_is_a_data_error(tmp_path):
    from genda.train.timing import curve_table

    (tmp_path / "timing.json").write_text("{not json")
    with pytest.raises(DataError, match=r"timing\.json: not a timing file"):
        write_timing(tmp_path / "timing.json", "m.pt", train_seconds=1, curve_wall_s=[])
    pd.DataFrame({"setting": ["dann"], "seed": [0], "step": [5], "target_acc": [.5]}).to_csv(tmp_path / "copy.csv")
    with pytest.raises(DataError, match=r"copy\.csv: a curve table without wall_s outside"):
        curve_table(tmp_path / "copy.csv")
