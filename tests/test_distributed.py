"""Data-parallel training through torchrun: gloo backend, 2 CPU processes (see genda.runtime.distributed)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import VENV_BIN, prepared_project, run
from genda.runtime.checkpoint import load_weights
from genda.data.store import BatchStream

WORKER = r'''
import json, sys, torch
from genda.runtime import distributed
assert distributed.init_from_env()
r, w = distributed.rank(), distributed.world_size()
torch.manual_seed(100 + r)                      # every rank starts from other weights ...
model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
distributed.broadcast_modules(model)            # ... until rank 0's are broadcast
opt = torch.optim.SGD(model.parameters(), lr=0.5)
distributed.sync_optimizer(opt)
torch.manual_seed(100)
ref = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
ref_opt = torch.optim.SGD(ref.parameters(), lr=0.5)
g = torch.Generator().manual_seed(1)
x, y = torch.randn(8, 5, generator=g), torch.randn(8, 3, generator=g)
for _ in range(3):                              # rank shard vs the single-process full batch
    opt.zero_grad(); ref_opt.zero_grad()
    ((model(x[r * 4:(r + 1) * 4]) - y[r * 4:(r + 1) * 4]) ** 2).mean().backward(); opt.step()
    ((ref(x) - y) ** 2).mean().backward(); ref_opt.step()
flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
ref_flat = torch.cat([p.detach().reshape(-1) for p in ref.parameters()])
res = {"rank": r, "vs_single": float((flat - ref_flat).abs().max()), "params": flat.tolist(),
       "mean": distributed.mean_scalar(float(r))}
open(f"{sys.argv[1]}/rank{r}.json", "w").write(json.dumps(res))
distributed.shutdown()
'''


def _env(**extra) -> dict:
    e = {**os.environ, "GENDA_DEVICE": "cpu", "GENDA_MLFLOW": "0", "GENDA_THREADS": "1",
         "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    e.update(extra)
    return e


def test_gradient_averaging_equals_single_process_full_batch(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(script), str(tmp_path)], env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1)]
    assert [d["rank"] for d in res] == [0, 1]
    assert res[0]["params"] == res[1]["params"], "ranks diverged"
    for d in res:  # two half-batch gradients averaged == one full-batch gradient (up to float rounding)
        assert d["vs_single"] < 1e-6
        assert d["mean"] == pytest.approx(0.5)


def test_batch_stream_shards_the_global_batch(monkeypatch):
    from genda.runtime import distributed

    single = BatchStream(100, 32, seed=3)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    shards = []
    for r in (0, 1):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        shards.append(BatchStream(100, 32, seed=3))
    assert shards[0].batch_size == 16 and shards[0].per_epoch == single.per_epoch == 3
    for step in (0, 2, 3, 7):  # across epochs too
        assert torch.equal(torch.cat([s.indices(step) for s in shards]), single.indices(step))
    from genda.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot be split over 2 processes"):
        BatchStream(100, 31, seed=3)


@pytest.fixture
def project(tmp_path, tiny_params):
    p = tiny_params
    p["da"].update(steps=60, batch_size=32, checkpoint_every=20, log_every=5, settings=["source_only"])
    return prepared_project(tmp_path / "proj", p)


@pytest.mark.slow
def test_stages_train_on_two_processes_and_load_single_process(project):
    d = project
    out = run([sys.executable, "stages/train_da.py", "mnistm-usps", "source_only"], d,
              env={"GENDA_NPROC": "2", "GENDA_MLFLOW": "1", "GENDA_THREADS": "1"})
    assert "2 processes via torchrun" in out.stdout
    ck = load_weights(d / "checkpoints/da/mnistm-usps/source_only/seed0/last.pt")
    assert ck["world_size"] == 2 and len(ck["state"]["gen_ranks"]) == 2
    assert not torch.equal(ck["state"]["gen_ranks"][0], ck["state"]["gen_ranks"][1]), "ranks drew the same noise"
    losses = [row["loss"] for row in ck["state"]["history"]]
    assert sum(losses[-3:]) < 0.9 * sum(losses[:3])  # single-process, same steps: 0.87x, f"loss did not fall: {losses}"
    # the model written by rank 0 loads and predicts in a single process
    from genda.data.store import load_prepared
    from genda.da.train import load_da_model
    from genda.data.tensors import predict_labels

    model = load_da_model(d / "models/da/mnistm-usps/source_only/seed0.pt", torch.device("cpu"))
    data = load_prepared(d / "data/prepared/digits/mnistm.pt")
    acc = float((predict_labels(model, data["x_test"], torch.device("cpu"), head="classify") == data["y_test"]).float().mean())
    assert acc > 0.2, f"(chance 0.1; single-process 0.32) source test accuracy {acc:.3f} after distributed training"
    # rank 0 alone tracked: exactly one MLflow run, finished, with the environment recorded
    import mlflow

    runs = mlflow.MlflowClient(f"sqlite:///{d / 'mlflow.db'}").search_runs(
        [mlflow.MlflowClient(f"sqlite:///{d / 'mlflow.db'}").get_experiment_by_name("genda").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["env.world_size"] == "2" and runs[0].data.tags["env.threads"] == "1"

    # a face GAN and a conditional generator: trained on 2 processes, sampled by the single-process stages
    run([sys.executable, "stages/train_gan.py", "dcgan"], d, env={"GENDA_NPROC": "2", "GENDA_MLFLOW": "0"})
    run([sys.executable, "stages/sample_gan.py", "dcgan"], d, env={"GENDA_MLFLOW": "0"})
    assert len(list((d / "samples/gan/dcgan/images").glob("*.png"))) == 40
    run([sys.executable, "stages/train_cond.py", "acgan"], d, env={"GENDA_NPROC": "2", "GENDA_MLFLOW": "0"})
    run([sys.executable, "stages/sample_cond.py", "acgan"], d, env={"GENDA_MLFLOW": "0"})
    assert len(list((d / "samples/cond/acgan/images").glob("*.png"))) == 30


@pytest.mark.slow
def test_kill9_of_one_rank_then_rerun_resumes(project):
    d = project
    p = yaml.safe_load((d / "params.yaml").read_text())
    p["da"].update(steps=200, checkpoint_every=10)
    (d / "params.yaml").write_text(yaml.safe_dump(p))
    cmd = [sys.executable, "stages/train_da.py", "mnistm-usps", "source_only"]
    ckpt = d / "checkpoints/da/mnistm-usps/source_only/seed0/last.pt"
    # the kill lands at an event, not after a sleep: both ranks pause at step 22 (tests/pause_hook), after the
    # checkpoint of step 20 and two unsaved steps; each writes its pid, and rank 1's is killed
    marks = d / "paused"
    hook = str(Path(__file__).resolve().parent / "pause_hook")
    env = _env(GENDA_NPROC="2", GENDA_WARM="0", OMP_NUM_THREADS="1", GENDA_TEST_PAUSE_AT="22",
               GENDA_TEST_PAUSE_DIR=str(marks),
               PYTHONPATH=os.pathsep.join(filter(None, [hook, os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(cmd, cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300  # generous: a starved machine only makes the wait longer
        while not all((marks / f"rank{r}.paused").exists() for r in (0, 1)):
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the ranks did not reach step 22"
            time.sleep(0.05)
        pids = {r: int((marks / f"rank{r}.paused").read_text()) for r in (0, 1)}
        assert len(set(pids.values()) | {proc.pid}) == 3, pids
        os.kill(pids[1], signal.SIGKILL)
        proc.communicate(timeout=120)
    except BaseException:  # a failure above: no paused rank may outlive the test
        for mark in marks.glob("rank*.paused"):
            try:
                os.kill(int(mark.read_text()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=60)
        raise
    assert proc.returncode != 0, "torchrun must fail when a rank is killed"
    assert not (d / "models/da/mnistm-usps/source_only/seed0.pt").exists(), "finished before the kill"
    at_kill = int(load_weights(ckpt)["step"])
    assert at_kill == 20
    out = run(cmd, d, env={"GENDA_NPROC": "2", "GENDA_MLFLOW": "0", "GENDA_THREADS": "1"})
    assert f"resumed from step {at_kill}" in out.stdout + out.stderr
    assert (d / "models/da/mnistm-usps/source_only/seed0.pt").exists()
