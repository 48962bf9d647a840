"""genda.pipeline.parallel: `dvc repro` on two lanes, on a small DVC project of shell stages (a diamond a -> b, c -> d).

Each stage writes its start and end times and its GENDA_THREADS; the tests check the order DVC's graph asks for, that
two independent stages overlap, that DVC records every stage in dvc.lock (a second run has nothing to do), and that a
failing stage stops the run with its name and its log, downstream stages not started.
"""
from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from conftest import VENV_BIN, run
from genda.pipeline import parallel

STAGE = ("{py} -c \"import json,os,sys,time; t=time.time(); time.sleep({sleep}); "
         "json.dump({{'start': t, 'end': time.time(), 'threads': os.environ.get('GENDA_THREADS')}}, "
         "open('{name}.json', 'w')); sys.exit({code})\"")


def _stage(name: str, deps: list[str], code: int) -> dict:
    stage = {"cmd": STAGE.format(py=sys.executable, sleep=1.5, name=name, code=code), "outs": [f"{name}.json"]}
    return stage | ({"deps": [f"{d}.json" for d in deps]} if deps else {})


def _project(tmp_path: Path, fail: str | None = None) -> Path:
    graph = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    stages = {n: _stage(n, deps, code=3 if n == fail else 0) for n, deps in graph.items()}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    run(["dvc", "config", "core.analytics", "false"], tmp_path)
    return tmp_path


def _times(root: Path) -> dict:
    return {n: json.loads((root / f"{n}.json").read_text()) for n in "abcd" if (root / f"{n}.json").exists()}


def _run(root: Path, jobs: int, monkeypatch, targets: list[str] | None = None) -> tuple[int, str]:
    monkeypatch.chdir(root)
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    out = io.StringIO()
    code = parallel.run(root, jobs=jobs, threads=1, dvc=str(VENV_BIN / "dvc"), out=out, targets=targets)
    return code, out.getvalue()


def test_two_lanes_follow_the_graph_overlap_and_record_every_stage(tmp_path, monkeypatch):
    root = _project(tmp_path)
    upstream, todo, _ = parallel.plan(root)
    assert upstream == {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}}
    assert todo == ["a", "b", "c", "d"]
    code, out = _run(root, 2, monkeypatch)
    assert code == 0, out
    t = _times(root)
    assert t["a"]["end"] <= min(t["b"]["start"], t["c"]["start"])
    assert max(t["b"]["end"], t["c"]["end"]) <= t["d"]["start"]
    assert t["b"]["start"] < t["c"]["end"] and t["c"]["start"] < t["b"]["end"], "b and c did not overlap"
    assert {s["threads"] for s in t.values()} == {"1"}
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"a", "b", "c", "d"}
    assert parallel.plan(root)[1] == []  # DVC sees every stage up to date
    code, out = _run(root, 2, monkeypatch)
    assert code == 0 and "every stage is up to date" in out


def test_a_changed_stage_reruns_with_its_downstream_only(tmp_path, monkeypatch):
    root = _project(tmp_path)
    assert _run(root, 2, monkeypatch)[0] == 0
    spec = yaml.safe_load((root / "dvc.yaml").read_text())
    spec["stages"]["c"]["cmd"] = spec["stages"]["c"]["cmd"].replace("time.sleep(1.5)", "time.sleep(1.0)")
    (root / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert parallel.plan(root)[1] == ["c", "d"]


def test_a_failing_stage_stops_the_run_and_shows_its_log(tmp_path, monkeypatch):
    root = _project(tmp_path, fail="b")
    code, out = _run(root, 2, monkeypatch)
    assert code == 1
    assert "FAILED b (exit" in out and "not started: d" in out
    assert "d" not in _times(root)


def test_targets_run_only_themselves_and_their_upstream(tmp_path, monkeypatch):
    root = _project(tmp_path)
    assert parallel.plan(root, ["b"])[1] == ["a", "b"]
    code, out = _run(root, 2, monkeypatch, targets=["b"])
    assert code == 0, out
    assert set(_times(root)) == {"a", "b"}  # c and d (downstream of a, not upstream of b) left alone
    assert parallel.plan(root)[1] == ["c", "d"]  # still to do; a and b recorded in dvc.lock
    assert parallel.plan(root, ["b"])[1] == []


def test_a_target_is_a_name_a_foreach_group_or_a_pattern_and_a_wrong_one_is_named():
    upstream = {"prepare": set(), "train@x": {"prepare"}, "train@y": {"prepare"}, "eval@x": {"train@x"},
                "eval@y": {"train@y"}, "report": {"eval@x", "eval@y"}}
    assert parallel.select(upstream, ["eval@x"]) == {"eval@x", "train@x", "prepare"}
    assert parallel.select(upstream, ["train"]) == {"train@x", "train@y", "prepare"}
    assert parallel.select(upstream, ["eval@*", "prepare"]) == {"eval@x", "eval@y", "train@x", "train@y", "prepare"}
    with pytest.raises(ValueError, match=r"'evaluate' names no stage.*eval, prepare, report, train"):
        parallel.select(upstream, ["evaluate"])


def test_critical_path_puts_the_longest_chain_first():
    upstream = {"prep": set(), "slow": {"prep"}, "fast": {"prep"}, "eval": {"slow"}, "sum": {"eval", "fast"}}
    todo = list(upstream)
    pr = parallel.critical_path(upstream, todo, {"prep": 1, "slow": 100, "fast": 10, "eval": 5, "sum": 1})
    assert pr == {"prep": 107, "slow": 106, "fast": 11, "eval": 6, "sum": 1}
    assert parallel.schedule(upstream, todo, pr) == ["prep", "slow", "fast", "eval", "sum"]


def test_bad_jobs_is_an_error():
    with pytest.raises(SystemExit):
        parallel.main(["--jobs", "0"])


def test_an_unknown_target_is_exit_2_naming_it(tmp_path, monkeypatch, capsys):
    root = _project(tmp_path)
    monkeypatch.chdir(root)
    assert parallel.main(["--dry", "e"]) == 2
    assert "'e' names no stage" in capsys.readouterr().err
