"""Each stage's wall time (genda.runtime.walls): recorded by the stage runner when DVC runs a stage, summed by the
summary into total_wall_s, backfilled from timestamped dvc logs (benchmarks/tools/walls_from_log.py)."""
import json
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT
from genda.errors import DataError
from genda.pipeline import summary

sys.path.insert(0, str(ROOT / "benchmarks/tools"))
import walls_from_log  # noqa: E402

STAGE = textwrap.dedent("""
    import sys, time
    from genda.runtime import stage
    from genda.errors import DataError
    def main():
        time.sleep(0.3)
        if sys.argv[1] == "fail":
            raise DataError("bad file x.png")
    stage.run(main, record_wall=sys.argv[2] == "1")
""")


def _run(tmp_path, mode, record, dvc_stage):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src"), "GENDA_THREADS": "1"}
    if dvc_stage:
        env["DVC_STAGE"] = dvc_stage
    (tmp_path / "s.py").write_text(STAGE)
    return subprocess.run([sys.executable, "s.py", mode, record], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_a_stage_run_by_dvc_records_its_wall_time(tmp_path):
    r = _run(tmp_path, "ok", "1", "real/dvc.yaml:train_da@a-b-dann")
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "walls/train_da@a-b-dann.json").read_text())
    assert rec["stage"] == "train_da@a-b-dann" and 0.3 <= rec["wall_s"] < 30
    assert rec["threads"] == "1" and "core" in rec["machine"]


@pytest.mark.parametrize("mode,record,dvc_stage", [("ok", "1", None),      # not run by DVC: nothing recorded
                                                   ("ok", "0", "summary"),   # the summary reads walls/ itself
                                                   ("fail", "1", "x")])      # a failed stage records nothing
def test_no_record_outside_dvc_for_the_summary_or_after_a_failure(tmp_path, mode, record, dvc_stage):
    r = _run(tmp_path, mode, record, dvc_stage)
    assert r.returncode == (2 if mode == "fail" else 0), r.stderr
    assert not (tmp_path / "walls").exists()


def test_the_summary_sums_the_wall_records_and_names_a_bad_one(tmp_path):
    w = tmp_path / "walls"
    w.mkdir()
    (w / "README.md").write_text("not a record")
    for stage, s in (("prepare", 10.0), ("train_da@a-b-dann", 3000.0), ("train_da@a-b-dsn", 600.0)):
        (w / f"{stage}.json").write_text(json.dumps({"stage": stage, "wall_s": s, "machine": "2-core X"}))
    assert {k: v["wall_s"] for k, v in summary.stage_walls(w).items()} == \
        {"prepare": 10.0, "train_da@a-b-dann": 3000.0, "train_da@a-b-dsn": 600.0}
    h = {"total_wall_s": 3610.0, "walls_machines": ["2-core X"],
         "stage_wall_s": {k: v["wall_s"] for k, v in summary.stage_walls(w).items()}}
    md = "\n".join(summary._walls_table(h))
    assert "3 stages that recorded one (`walls/`): **1.00 h** (2-core X)" in md
    assert "| `train_da` | 2 | 60.0 min |\n| `prepare` | 1 | 0.2 min |" in md  # longest kind first
    (w / "bad.json").write_text(json.dumps({"stage": "x"}))
    with pytest.raises(DataError, match="bad.json is no wall record"):
        summary.stage_walls(w)


def test_walls_are_backfilled_from_timestamped_logs_with_interrupted_runs_added(tmp_path):
    a, b = tmp_path / "1.log", tmp_path / "2.log"
    a.write_text("    0.9 Running stage 'prepare':\n   11.5 Updating lock file 'dvc.lock'\n"
                 "   11.6 Running stage 'train_cond@ddpm':\n  100.0 train_cond ddpm: 3%\n  400.6 make: *** Error\n")
    b.write_text("    1.0 Stage 'prepare' didn't change, skipping\n    1.1 Running stage 'real/dvc.yaml:train_cond@ddpm':\n"
                 " 1001.1 Updating lock file 'dvc.lock'\n")
    walls = walls_from_log.stage_walls([a, b])
    assert walls == pytest.approx({"prepare": 10.6, "train_cond@ddpm": 389.0 + 1000.0})
