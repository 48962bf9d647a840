"""MLflow tracking through the helper process: what a stage logs lands in the run, a broken tracking URI
costs one warning and never the stage, and a stage killed mid-run leaves its run marked KILLED."""
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from genda.runtime.tracking import Tracker


def _db(tmp_path):
    return tmp_path / "mlflow.db"


def test_tracker_logs_params_metrics_tags_artifact_and_finishes(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{_db(tmp_path)}")
    monkeypatch.setenv("GENDA_MLFLOW", "1")
    (tmp_path / "a.txt").write_text("hello")
    with Tracker("train_x@demo", params={"gan": {"lr": 0.1, "steps": 3}, "name": "demo"}, root=tmp_path,
                 flush_every=7) as tr:  # 3 metrics x 10 steps = 30: several batches while MLflow may still start
        for step in range(10):
            tr.log_metrics({"loss_d": step / 10, "loss_g": 1.0, "skipped": None, "acc": 0.5}, step=step)
        tr.set_tags({"fid_extractor": "tiny"})
        tr.log_artifact(tmp_path / "a.txt")
        tr.log_artifact(tmp_path / "missing.txt")  # absent: ignored
    con = sqlite3.connect(_db(tmp_path))
    ((run_id, name, status, artifact_uri),) = con.execute("select run_uuid, name, status, artifact_uri from runs")
    assert (name, status) == ("train_x@demo", "FINISHED")
    params = dict(con.execute("select key, value from params where run_uuid=?", (run_id,)))
    assert params == {"gan.lr": "0.1", "gan.steps": "3", "name": "demo"}
    rows = con.execute("select key, value, step from metrics where run_uuid=? order by key, step", (run_id,)).fetchall()
    assert len(rows) == 30 and [r[1] for r in rows if r[0] == "loss_d"] == [s / 10 for s in range(10)]
    tags = dict(con.execute("select key, value from tags where run_uuid=?", (run_id,)))
    assert tags["fid_extractor"] == "tiny" and tags["dvc_stage"] == "train_x@demo" and "git_commit" in tags
    art = artifact_uri.removeprefix("file://")
    assert open(f"{art}/a.txt").read() == "hello"


def _stage_script(body: str) -> str:
    return textwrap.dedent('''
        import os, sys
        from genda.runtime.tracking import Tracker
        with Tracker("train_y@demo", params={"k": 1}, root=sys.argv[1]) as tr:
    ''') + textwrap.indent(textwrap.dedent(body), "    ")


def test_broken_tracking_uri_warns_once_and_the_stage_goes_on(tmp_path):
    script = _stage_script('''
        tr.log_metrics({"loss": 1.0}, step=1)
        tr.set_tags({"a": 1})
        print("stage work done")
    ''')
    env = {"PATH": "/usr/bin:/bin", "GENDA_MLFLOW": "1", "MLFLOW_TRACKING_URI": "bogus-scheme://nowhere"}
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0 and "stage work done" in r.stdout
    assert r.stderr.count("MLflow start failed") == 1 and "continuing without tracking" in r.stderr


def test_killed_stage_leaves_its_run_marked_killed(tmp_path):
    script = _stage_script('''
        tr.log_metrics({"loss": 1.0}, step=1)
        tr.flush()
        os.kill(os.getpid(), 9)  # like an OOM kill or kill -9: no __exit__
    ''')
    env = {"PATH": "/usr/bin:/bin", "GENDA_MLFLOW": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{_db(tmp_path)}"}
    p = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], env=env)
    assert p.wait(timeout=300) == -9
    # the helper outlives the stage: it finishes the queued messages, then records how the stage ended
    import time

    deadline = time.time() + 120
    status = None
    while time.time() < deadline:
        if _db(tmp_path).exists():
            try:
                rows = sqlite3.connect(_db(tmp_path)).execute("select status from runs").fetchall()
            except sqlite3.OperationalError:  # schema still being created
                rows = []
            status = rows[0][0] if rows else None
            if status not in (None, "RUNNING"):
                break
        time.sleep(0.5)
    assert status == "KILLED"
    con = sqlite3.connect(_db(tmp_path))
    assert con.execute("select value from metrics where key='loss'").fetchall() == [(1.0,)]


WARM_FORK = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    import mlflow.tracking  # as the warm server has it (genda.runtime.forkserver.PRELOAD)
    from genda.runtime.tracking import Tracker, warm_store
    root, mode = Path(sys.argv[1]), sys.argv[2]
    warm = mode in ("warm", "replaced")
    uri = warm_store(root) if warm else None
    if warm:
        from mlflow.tracking._tracking_service.utils import _get_store
        print(json.dumps({"uri": uri, "pooled": _get_store(uri).engine.pool.checkedin()}), flush=True)
    if mode == "replaced":  # the database removed after the server opened it: the helper must build the store again
        os.remove(root / "mlflow.db")
    pid = os.fork()  # a warm stage: a fork of the server, whose MLflow helper is a fork of it (_ForkedHelper)
    if pid == 0:
        code = 1
        try:
            from mlflow.store.tracking import sqlalchemy_store

            def refuse(*a, **k):
                raise RuntimeError("store built again")

            if mode != "replaced":
                sqlalchemy_store.SqlAlchemyStore.__init__ = refuse
            os.environ["GENDA_WARM_CHILD"] = "1"
            with Tracker("train_z@warm", params={"k": 1}, root=root) as tr:
                tr.log_metrics({"loss": 0.5}, step=3)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"stage_status": os.waitstatus_to_exitcode(status)}), flush=True)
''')


def test_a_store_warmed_before_the_fork_serves_every_forked_helper(tmp_path):
    """genda.runtime.forkserver opens the MLflow store once (warm_store) and forks the stages after it: their helpers must log
    through that store, never build it again (here: building it raises), each with its own sqlite connection; a
    database removed since the server opened it is built again, not written to without its tables."""
    env = {"PATH": "/usr/bin:/bin", "GENDA_MLFLOW": "1", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    runs = {}
    for mode in ("warm", "cold", "replaced"):  # cold: the control -- the helper has to build the store and cannot
        root = tmp_path / mode
        root.mkdir()
        r = subprocess.run([sys.executable, "-c", WARM_FORK, str(root), mode], capture_output=True, text=True,
                           env=env, timeout=300)
        out = [json.loads(line) for line in r.stdout.splitlines()]
        assert r.returncode == 0 and out[-1] == {"stage_status": 0}, r.stderr
        if mode == "cold":
            assert "MLflow start failed (RuntimeError: store built again)" in r.stderr
        else:
            assert out[0] == {"uri": f"sqlite:///{_db(root)}", "pooled": 0}  # no connection crosses the fork
            assert "failed" not in r.stderr, r.stderr
        runs[mode] = (sqlite3.connect(_db(root)).execute(
            "select r.name, r.status, m.key, m.value, m.step from runs r join metrics m on m.run_uuid = r.run_uuid"
        ).fetchall() if _db(root).exists() else [])
    assert runs["warm"] == runs["replaced"] == [("train_z@warm", "FINISHED", "loss", 0.5, 3)]
    assert runs["cold"] == []


def test_warm_store_is_off_with_tracking_off_and_for_non_sqlite_stores(tmp_path, monkeypatch):
    from genda.runtime.tracking import tracking_uri, warm_store

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert tracking_uri(tmp_path) == f"sqlite:///{_db(tmp_path)}"
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "dvc_root"))  # DVC's stage environment wins over the root
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path / 'dvc_root' / 'mlflow.db'}"
    monkeypatch.setenv("GENDA_MLFLOW", "0")
    assert warm_store(tmp_path) is None
    monkeypatch.setenv("GENDA_MLFLOW", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://localhost:1")
    assert warm_store(tmp_path) is None and not (tmp_path / "dvc_root").exists()
