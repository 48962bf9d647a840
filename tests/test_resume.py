"""Training checkpoints periodically and, after kill -9, resumes to the same result as an uninterrupted run."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, VENV_BIN, prepared_project, run
from genda.runtime.checkpoint import load_weights
from genda.train.timing import read_timing


PAUSE_HOOK = Path(__file__).resolve().parent / "pause_hook"


def wait_for(event, proc: subprocess.Popen, timeout: float) -> None:
    """Poll `event()` until true; fail if `proc` ends first or after `timeout` seconds (generous: a starved
    machine only makes this slower)."""
    deadline = time.monotonic() + timeout
    while not event():
        assert proc.poll() is None, "the process ended before the event: " + proc.stdout.read().decode()[-2000:]
        assert time.monotonic() < deadline, f"no event after {timeout} s"
        time.sleep(0.05)


def _prepare(dest, params):
    prepared_project(dest, params)


@pytest.mark.parametrize("kind", ["gan", "da"])
def test_kill9_then_resume_matches_uninterrupted(tmp_path, tiny_params, kind):
    p = tiny_params
    # long enough for a few checkpoints (and, DA, curve points every 40 steps) before the end, short enough for CI
    n_steps = 60 if kind == "gan" else 150
    p["gan"].update(steps=n_steps, checkpoint_every=4, batch_size=8)
    p["face_gans"]["dcgan"].pop("steps", None)  # the default gives dcgan its own length
    p["da"].update(steps=n_steps, checkpoint_every=10, batch_size=16, settings=["dann"], eval_every=40)
    if kind == "gan":
        cmd, ckpt, model = ["stages/train_gan.py", "dcgan"], "checkpoints/gan/dcgan/last.pt", "models/gan/dcgan/generator.pt"
    else:
        cmd = ["stages/train_da.py", "mnistm-usps", "dann"]
        ckpt, model = "checkpoints/da/mnistm-usps/dann/seed0/last.pt", "models/da/mnistm-usps/dann/seed0.pt"
    # the kill lands at an event, not after a sleep: the run pauses at step `pause` (tests/pause_hook), after its
    # checkpoint at `saved` and unsaved steps after it (DA: also after its curve point at step 40)
    saved, pause = (4, 6) if kind == "gan" else (40, 42)
    marks = tmp_path / "paused"
    env = {**os.environ, "GENDA_DEVICE": "cpu", "GENDA_MLFLOW": "0", "OMP_NUM_THREADS": "1", "GENDA_WARM": "0",
           "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "GENDA_TEST_PAUSE_AT": str(pause),
           "GENDA_TEST_PAUSE_DIR": str(marks),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PAUSE_HOOK), os.environ.get("PYTHONPATH")]))}

    a = tmp_path / "interrupted"
    _prepare(a, p)
    proc = subprocess.Popen([sys.executable, *cmd], cwd=a, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (marks / "rank0.paused").exists(), proc, 300)
        assert int((marks / "rank0.paused").read_text()) == proc.pid
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        out_a = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == -signal.SIGKILL, out_a[-2000:]
    assert not (a / model).exists(), "the run finished before it was killed; test proves nothing"
    step_at_kill = int(load_weights(a / ckpt)["step"])
    assert step_at_kill == saved and 0 < step_at_kill < n_steps

    one = {"GENDA_MLFLOW": "0", "OMP_NUM_THREADS": "1"}
    out = run([sys.executable, *cmd], a, env=one).stdout
    assert f"resumed from step {step_at_kill}" in out

    b = tmp_path / "straight"
    _prepare(b, p)
    out_b = run([sys.executable, *cmd], b, env=one).stdout
    assert "resumed" not in out_b
    # the model file itself, not just its weights: a resumed run writes the bytes of an uninterrupted one
    # (wall times live in a timing file beside the metrics), so DVC sees no change downstream of it
    assert (a / model).read_bytes() == (b / model).read_bytes()
    wa, wb = load_weights(a / model), load_weights(b / model)
    key = "G" if kind == "gan" else "model"
    assert wa[key].keys() == wb[key].keys()
    for k in wa[key]:
        assert torch.equal(wa[key][k], wb[key][k]), f"{k} differs after resume"
    if kind == "da":
        # the training curve (test accuracy every 40 steps and at the end) survives the kill: same points,
        # same accuracies; the wall time, summed over the two runs of the killed one, only grows along it
        ca, cb = wa["curve"], wb["curve"]
        assert [r["step"] for r in ca] == [r["step"] for r in cb] == [40, 80, 120, 150]
        assert [(r["target_acc"], r["source_acc"]) for r in ca] == [(r["target_acc"], r["source_acc"]) for r in cb]
        for d in (a, b):
            t = read_timing(d / "metrics/da/mnistm-usps/dann/timing.json", "seed0.pt")
            w = [t["wall_s"][s] for s in (40, 80, 120, 150)]
            assert 0 < w[0] < w[1] < w[2] < w[3] <= t["train_seconds"], w
        # scoring the model during training does not perturb training: without the curve, the same weights
        c = tmp_path / "no_curve"
        p["da"]["eval_every"] = 0
        _prepare(c, p)
        run([sys.executable, *cmd], c, env=one)
        wc = load_weights(c / model)
        assert wc["curve"] == [] and all(torch.equal(wb[key][k], wc[key][k]) for k in wb[key])


def test_checkpoint_from_other_settings_is_not_resumed(tmp_path, tiny_params):
    p = tiny_params
    d = tmp_path / "proj"
    _prepare(d, p)
    run([sys.executable, "stages/train_gan.py", "dcgan"], d, env={"GENDA_MLFLOW": "0"})
    assert (d / "checkpoints/gan/dcgan/last.pt").exists()
    import yaml

    p["lr_d"] = 1e-4
    (d / "params.yaml").write_text(yaml.safe_dump(p))
    out = run([sys.executable, "stages/train_gan.py", "dcgan"], d, env={"GENDA_MLFLOW": "0"}).stdout
    assert "made with other settings; starting fresh" in out and "resumed" not in out


def _ck(tmp_path, total=None):
    from genda.runtime.checkpoint import Checkpointer

    return Checkpointer(tmp_path / "ck", every=5, fingerprint="f", total=total)


def test_corrupt_checkpoint_falls_back_to_the_previous_one_then_fresh(tmp_path, capsys):
    ck = _ck(tmp_path)
    ck.save(5, {"w": torch.ones(2)})
    ck.save(10, {"w": torch.full((2,), 2.0)})
    assert int(load_weights(ck.prev)["step"]) == 5, "a save keeps the checkpoint it replaces"
    ck.path.write_bytes(os.urandom(1024))  # 1 KB of random bytes over the newest checkpoint
    step, state = ck.load()
    out = capsys.readouterr().out
    assert step == 5 and torch.equal(state["w"], torch.ones(2))
    assert f"cannot load checkpoint {ck.path}" in out and f"falling back to the previous checkpoint {ck.prev}" in out
    ck.prev.write_bytes(b"")  # both bad: a fresh start with a warning naming each file, never a dead end
    assert ck.load() is None
    out = capsys.readouterr().out
    assert str(ck.path) in out and str(ck.prev) in out and "starting fresh" in out


def test_finished_checkpoint_is_not_resumed(tmp_path, capsys):
    ck = _ck(tmp_path, total=10)
    ck.save(5, {"w": torch.ones(1)})
    assert ck.load()[0] == 5
    ck.save(10, {"w": torch.ones(1)})
    assert ck.load() is None
    assert "holds a finished run (10/10 steps); retraining from scratch" in capsys.readouterr().out


def test_stage_with_corrupt_checkpoint_trains_and_a_rerun_retrains(tmp_path, tiny_params):
    """The issue's dead end: 1 KB of random bytes in checkpoints/gan/dcgan/last.pt used to stop the stage."""
    d = tmp_path / "proj"
    _prepare(d, tiny_params)
    ckpt = d / "checkpoints/gan/dcgan/last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(os.urandom(1024))
    env = {"GENDA_MLFLOW": "0"}
    out = run([sys.executable, "stages/train_gan.py", "dcgan"], d, env=env).stdout
    assert f"cannot load checkpoint {ckpt.relative_to(d)}" in out and "starting fresh" in out
    first = load_weights(d / "models/gan/dcgan/generator.pt")["G"]
    # running the finished stage again (dvc repro -f, or a changed code dependency) retrains from step 0
    out = run([sys.executable, "stages/train_gan.py", "dcgan"], d, env=env).stdout
    assert "retraining from scratch" in out and "resumed" not in out
    again = load_weights(d / "models/gan/dcgan/generator.pt")["G"]
    assert all(torch.equal(first[k], again[k]) for k in first), "same params and seed, same weights"


def test_finished_checkpoint_is_kept_when_its_stage_run_was_interrupted(tmp_path, capsys):
    from genda.runtime.checkpoint import Checkpointer, StageRun

    StageRun(tmp_path / "s").begin()  # the stage run that saves the finished checkpoint, then is killed
    try:
        ck = _ck(tmp_path, total=10)
        ck.save(10, {"w": torch.full((1,), 3.0)})
        assert StageRun(tmp_path / "s").begin() is True  # the rerun resumes the interrupted stage run
        ck.keep_finished = True
        step, state = ck.load()
        assert step == 10 and torch.equal(state["w"], torch.full((1,), 3.0))
        assert "holds a finished run (10/10 steps) of an interrupted stage run; kept" in capsys.readouterr().out
        other = Checkpointer(tmp_path / "ck", every=5, fingerprint="g", total=10, keep_finished=True)
        assert other.load() is None, "a finished run of other settings is never kept"
    finally:
        StageRun(tmp_path / "s").end()


def test_a_finished_checkpoint_of_an_earlier_completed_stage_run_is_retrained(tmp_path, capsys):
    """The case that kept stale seeds: a stage run trains seeds 0-2 and completes; a later run (a changed dependency)
    starts afresh, finishes seed 0 and is killed during seed 1; its resume keeps seed 0 but must retrain seed 2,
    whose folder still holds the *earlier* run's finished checkpoint (same settings, so the same fingerprint)."""
    from genda.runtime.checkpoint import Checkpointer, StageRun

    def seed(n):
        return Checkpointer(tmp_path / f"seed{n}", every=5, fingerprint="f", total=10, keep_finished=True)

    first = StageRun(tmp_path / "s")
    assert first.begin() is False
    for n in range(3):
        seed(n).save(10, {"w": torch.full((1,), float(n))})
    first.end()
    assert StageRun.active is None
    second = StageRun(tmp_path / "s")
    assert second.begin() is False, "the previous run completed: a fresh stage run"
    seed(0).save(10, {"w": torch.full((1,), 10.0)})  # seed 0 retrained, then the kill (no end())
    try:
        assert StageRun(tmp_path / "s").begin() is True
        capsys.readouterr()
        step, state = seed(0).load()
        assert step == 10 and state["w"].item() == 10.0, "finished by the interrupted run: kept"
        assert seed(2).load() is None, "finished by the earlier, completed run: retrained"
        assert "of an earlier run of this stage" in capsys.readouterr().out
    finally:
        StageRun(tmp_path / "s").end()


def test_a_marker_without_a_token_keeps_nothing(tmp_path):
    """stage_run.json written before tokens existed: which seeds its run finished is unknown, so none is kept."""
    import json

    from genda.runtime.checkpoint import Checkpointer, StageRun

    ck = Checkpointer(tmp_path / "seed0", every=5, fingerprint="f", total=10, keep_finished=True)
    ck.save(10, {"w": torch.ones(1)})
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "stage_run.json").write_text(json.dumps({"complete": False}))
    run = StageRun(tmp_path / "s")
    try:
        assert run.begin() is True
        assert ck.load() is None
        assert json.loads(run.path.read_text()) == {"complete": False, "run": StageRun.active}
    finally:
        run.end()


def test_stage_run_marks_an_interrupted_stage_run_and_only_that(tmp_path, capsys):
    from genda.runtime.checkpoint import StageRun

    run = StageRun(tmp_path / "s")
    assert run.begin() is False, "first run of the stage: nothing to keep"
    token = StageRun.active
    assert StageRun(tmp_path / "s").begin() is True, "begun, never ended: an interrupted run of the stage"
    assert StageRun.active == token, "the resumed stage run carries on with the interrupted run's token"
    assert "resuming an interrupted run of this stage" in capsys.readouterr().out
    run.end()
    assert StageRun.active is None
    assert run.begin() is False, "the previous run completed: a forced rerun or a changed dependency retrains"
    assert StageRun.active != token, "a fresh stage run draws a new token"
    run.path.write_text("not json")
    assert StageRun(tmp_path / "s").begin() is False, "an unreadable marker: a fresh stage run"
    run.end()
