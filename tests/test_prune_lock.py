"""genda.pipeline.prune_lock: dvc.lock entries of stages that left dvc.yaml are dropped, the others kept as they are."""
import yaml

from conftest import run
from genda.pipeline.prune_lock import prune


def test_dead_foreach_branches_are_dropped_and_live_entries_kept(tmp_path):
    run(["dvc", "init", "--no-scm", "-q"], tmp_path)
    (tmp_path / "params.yaml").write_text("gans: {a: {}, b: {}}\n")
    (tmp_path / "dvc.yaml").write_text("stages:\n  prep:\n    cmd: echo\n  train:\n    foreach: ${gans}\n"
                                       "    do:\n      cmd: echo ${key}\n")
    entry = {"cmd": "echo a", "outs": [{"path": "x", "hash": "md5", "md5": "0" * 32}]}
    lock = {"schema": "2.0", "stages": {"prep": {"cmd": "echo"}, "train@a": entry, "train@gone": {"cmd": "echo gone"},
                                        "old_stage": {"cmd": "echo old"}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    assert prune(tmp_path) == ["train@gone", "old_stage"]
    got = yaml.safe_load((tmp_path / "dvc.lock").read_text())
    assert got == {"schema": "2.0", "stages": {"prep": {"cmd": "echo"}, "train@a": entry}}
    assert prune(tmp_path) == []  # nothing left to drop: the file is not rewritten
