"""The warm fork server (genda.runtime.forkserver): stages handed to it behave exactly like fresh processes.

Real processes throughout: a server started with ``python -m genda.runtime.forkserver serve`` in a private socket folder,
tiny stage scripts run by ``python script.py`` clients (GENDA_WARM=1), compared with the same scripts run
cold.  ~30 s, most of it the server's imports."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

SCRIPT = '''
import os, sys, hashlib
from genda.runtime import stage
from genda.errors import ConfigError

def main():
    mode = sys.argv[1]
    print("warm" if os.environ.get("GENDA_WARM_CHILD") else "cold", "cwd=" + os.getcwd(), "argv=" + ",".join(sys.argv[1:]),
          "flag=" + os.environ.get("MY_FLAG", ""), flush=True)
    print("to stderr", file=sys.stderr)
    if mode == "train":  # a seeded training run: the bytes of its weights
        import torch
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(10))
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        for _ in range(5):
            x, y = torch.randn(64, 3, 16, 16), torch.randint(0, 10, (64,))
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad(); loss.backward(); opt.step()
        h = hashlib.sha1(b"".join(p.detach().numpy().tobytes() for p in net.parameters())).hexdigest()
        print("threads", torch.get_num_threads(), "weights", h)
    elif mode == "config_error":
        raise ConfigError("bad key 'x'")
    elif mode == "crash":
        raise RuntimeError("boom")
    elif mode == "exit5":
        sys.exit(5)
    elif mode == "modules":  # what the worker inherited from the server
        print("tracking_loaded=" + str("genda.runtime.tracking" in sys.modules or hasattr(sys.modules["genda"], "tracking")))
    elif mode == "sleep":
        import time
        time.sleep(60)

stage.run(main)
'''


@pytest.fixture
def sock_dir():
    """A short folder for the sockets (pytest's tmp_path can exceed AF_UNIX's 107-byte socket paths)."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="gw-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def warm(tmp_path, sock_dir):
    """(env for GENDA_WARM=1 clients, script path); the server is stopped afterwards."""
    env = {**os.environ, "GENDA_WARM": "1", "GENDA_WARM_DIR": str(sock_dir), "GENDA_MLFLOW": "0",
           "MY_FLAG": "set", "PYTHONPATH": str(ROOT / "src")}
    env.pop("GENDA_WARM_CHILD", None)
    script = tmp_path / "stage_script.py"
    script.write_text(SCRIPT)
    server = subprocess.Popen([sys.executable, "-m", "genda.runtime.forkserver", "serve"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = server.stdout.readline()  # "[genda.runtime.forkserver] serving on ..." once the imports are done
    assert "serving on" in line, line
    yield env, script
    subprocess.run([sys.executable, "-m", "genda.runtime.forkserver", "stop"], env=env, check=True, capture_output=True)
    assert server.wait(timeout=30) == 0


def run(env, script, *args, cwd=None, **kw):
    return subprocess.run([sys.executable, str(script), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120, **kw)


def test_warm_stage_matches_a_fresh_process(warm, tmp_path):
    env, script = warm
    work = tmp_path / "work"
    work.mkdir()
    w = run(env, script, "train", "x y", cwd=work)
    c = run({**env, "GENDA_WARM": "0"}, script, "train", "x y", cwd=work)
    assert w.returncode == c.returncode == 0
    assert w.stdout.startswith(f"warm cwd={work} argv=train,x y flag=set")  # the client's cwd, argv, environment
    assert c.stdout.startswith("cold ")
    assert w.stderr == c.stderr == "to stderr\n"  # the client's own stdout / stderr, no server noise
    warm_out, cold_out = w.stdout.split("\n")[1], c.stdout.split("\n")[1]
    assert warm_out == cold_out and warm_out.startswith("threads 2 weights ")  # bit-identical training


def test_warm_exit_statuses_and_errors(warm):
    env, script = warm
    r = run(env, script, "config_error")
    assert r.returncode == 2 and "genda: error: bad key 'x'" in r.stderr and r.stdout.startswith("warm")
    r = run(env, script, "crash")
    assert r.returncode == 1 and "RuntimeError: boom" in r.stderr
    assert run(env, script, "exit5").returncode == 5
    assert run(env, script, "ok").returncode == 0


def test_signal_to_the_client_stops_the_warm_stage(warm):
    env, script = warm
    p = subprocess.Popen([sys.executable, str(script), "sleep"], env=env, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().startswith("warm")
    t = time.time()
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=20) == 128 + signal.SIGTERM and time.time() - t < 10


def test_ctrl_c_reaches_the_warm_stage(warm):
    env, script = warm
    # SIGINT at its default in the client, whatever the test runner's (a background job ignores it, and so would
    # a stage run there, warm or cold)
    p = subprocess.Popen([sys.executable, str(script), "sleep"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.stdout.readline().startswith("warm")
    p.send_signal(signal.SIGINT)  # forwarded: KeyboardInterrupt in the stage, as in a terminal
    assert p.wait(timeout=20) == 130 and "KeyboardInterrupt" in p.stderr.read()


def test_the_server_opens_the_mlflow_store_once_and_workers_still_import_genda_fresh(tmp_path, sock_dir):
    env = {**os.environ, "GENDA_WARM": "1", "GENDA_WARM_DIR": str(sock_dir), "GENDA_MLFLOW": "1",
           "PYTHONPATH": str(ROOT / "src")}
    for var in ("GENDA_WARM_CHILD", "DVC_ROOT", "MLFLOW_TRACKING_URI", "GENDA_ROOT"):
        env.pop(var, None)
    script = tmp_path / "stage_script.py"
    script.write_text(SCRIPT)
    server = subprocess.Popen([sys.executable, "-m", "genda.runtime.forkserver", "serve"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "serving on" in server.stdout.readline()
        # the project of the server's cwd (no params.yaml above tmp_path: the cwd itself), as a stage's Tracker
        assert server.stdout.readline().strip() == f"[genda.runtime.forkserver] MLflow store open: sqlite:///{tmp_path}/mlflow.db"
        assert (tmp_path / "mlflow.db").exists()
        r = run(env, script, "modules", cwd=tmp_path)
        assert r.returncode == 0 and r.stdout.startswith("warm") and "tracking_loaded=False" in r.stdout, r.stderr
    finally:
        subprocess.run([sys.executable, "-m", "genda.runtime.forkserver", "stop"], env=env, capture_output=True)
        assert server.wait(timeout=30) == 0


def test_without_a_server_the_stage_runs_itself_and_starts_one(tmp_path, sock_dir):
    env = {**os.environ, "GENDA_WARM": "1", "GENDA_WARM_DIR": str(sock_dir), "GENDA_MLFLOW": "0",
           "PYTHONPATH": str(ROOT / "src"), "GENDA_WARM_IDLE": "5"}
    env.pop("GENDA_WARM_CHILD", None)
    script = tmp_path / "stage_script.py"
    script.write_text(SCRIPT)
    r = run(env, script, "ok")
    assert r.returncode == 0 and r.stdout.startswith("cold")  # ran here, a server is starting in the background
    status = lambda: subprocess.run([sys.executable, "-m", "genda.runtime.forkserver", "status"], env=env,  # noqa: E731
                                    capture_output=True, text=True).stdout
    deadline = time.time() + 90
    while "serving on" not in status() and time.time() < deadline:
        time.sleep(0.5)
    assert "serving on" in status()
    assert run(env, script, "ok").stdout.startswith("warm")
    deadline = time.time() + 30  # idle for GENDA_WARM_IDLE = 5 s: it exits by itself
    while "serving on" in status() and time.time() < deadline:
        time.sleep(0.5)
    assert "no server" in status()
    log = next(sock_dir.glob("genda-warm-*.sock.log")).read_text()
    assert "serving on" in log and "idle: exiting" in log


def test_socket_path_fits_af_unix(monkeypatch, sock_dir):
    from genda.runtime import forkserver

    monkeypatch.setenv("GENDA_WARM_DIR", str(sock_dir))
    assert forkserver.socket_path().startswith(f"{sock_dir}/genda-warm-")
    long_a, long_b = sock_dir / ("a" * 120), sock_dir / ("b" * 120)
    monkeypatch.setenv("GENDA_WARM_DIR", str(long_a))
    path_a = forkserver.socket_path()
    monkeypatch.setenv("GENDA_WARM_DIR", str(long_b))
    path_b = forkserver.socket_path()
    assert path_a.startswith("/tmp/genda-warm-") and len(path_a) <= 100 and path_a != path_b  # one per folder
