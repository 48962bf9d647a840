"""MLflow run logging for every train/evaluate stage — never fatal, and off the stage's critical path.

Tracking URI: ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the project root — the root of the
DVC repository that started the stage (``$DVC_ROOT``), so the runs of queued experiments, which DVC runs
in temporary copies of the project, land in the project's own ``mlflow.db``.  Several stages may write to
one sqlite store at once (``dvc queue start -j 2``): creating the store is serialised by a file lock and
a write that finds the database locked is retried with back-off.  Each run is
tagged with the git commit (and whether the tree was dirty), ``DVC_EXP_NAME`` (set by ``dvc exp run``)
and the DVC stage name, so every number in MLflow points back to a commit, params and a checkpoint.

Importing MLflow and opening its store costs ~6 s of CPU on a small machine, per stage.  So a
:class:`Tracker` hands all MLflow work to a helper process (``python -m genda.runtime.tracking``) that it starts
first thing: MLflow loads on another core while the stage imports torch and works, and the stage only
streams JSON lines to it (params, batched metrics, tags, artifacts, the end status) and waits for it
at the end.  Under ``make repro`` (:mod:`genda.runtime.forkserver`) the helper is a fork of the stage, and the warm server has
opened the project's sqlite store once before forking the stages (:func:`warm_store`), so a stage's MLflow
costs it ~0.1 s of CPU.  If the tracking server is unreachable or MLflow fails in any way, the helper prints a
single warning and the stage goes on; a stage killed mid-run leaves its run marked ``KILLED``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

# A dead server must not stall training: few retries, short timeouts (user env vars win).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")

EXPERIMENT = "genda"


def git_commit(root: Path) -> tuple[str, bool]:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
        return sha or "unknown", dirty
    except Exception:
        return "unknown", False


def tracking_uri(root: Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI``, else ``sqlite:///<project>/mlflow.db`` (project: ``$DVC_ROOT``, else ``root``, else
    :func:`genda.runtime.paths.repo_root`)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if not (os.environ.get("DVC_ROOT") or root):
        from genda.runtime.paths import repo_root

        root = repo_root()
    return f"sqlite:///{Path(os.environ.get('DVC_ROOT') or root) / 'mlflow.db'}"


def warm_store(root: Path | None = None) -> str | None:
    """Open this project's sqlite MLflow store (:func:`tracking_uri`) in this process, then close its connections.

    For a process that forks the stages (the warm server, :mod:`genda.runtime.forkserver`): MLflow caches an opened store per
    URI, so the MLflow helper of every stage forked from here later finds the store built and only opens its
    own sqlite connection (~0.02 s) instead of building SQLAlchemy's engine and checking the schema (~0.6-0.9 s of
    CPU per stage on the 2-core CPU, on the cores the stage trains on).  The connection pool is emptied before
    returning, so no sqlite connection is ever shared across a fork.  Creates the store (and the ``genda``
    experiment) if it does not exist, under the same file lock as the helpers.  Returns the URI, or None when
    tracking is off (``GENDA_MLFLOW=0``) or the store is not sqlite."""
    if os.environ.get("GENDA_MLFLOW", "1") == "0":
        return None
    uri = tracking_uri(root)
    if not uri.startswith("sqlite:///"):
        return None
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    from mlflow.tracking import MlflowClient
    from mlflow.tracking._tracking_service.utils import _get_store

    with _StoreLock(uri):
        client = MlflowClient(uri)
        if _retry(client.get_experiment_by_name, EXPERIMENT) is None:
            _retry(client.create_experiment, EXPERIMENT)
    store = _get_store(uri)
    store._genda_db = _db_identity(uri)  # what _forget_replaced_store compares with in the forked helpers
    engine = getattr(store, "engine", None)
    if engine is not None:
        engine.dispose()
    return uri


def _db_identity(uri: str) -> tuple[int, int] | None:
    try:
        st = os.stat(uri[len("sqlite:///"):])
        return st.st_dev, st.st_ino
    except OSError:
        return None


def _forget_replaced_store(uri: str) -> None:
    """In a helper: if the store was warmed (:func:`warm_store`) before its database file was removed or replaced,
    drop MLflow's cached stores so that this one is built afresh (tables created), instead of writing into a
    database without tables."""
    if not uri.startswith("sqlite:///"):
        return
    try:  # MLflow's private store cache: an MLflow without it never had a warmed store either
        from mlflow.tracking._tracking_service import utils

        store = utils._get_store(uri)
        if getattr(store, "_genda_db", None) not in (None, _db_identity(uri)):
            utils._tracking_store_registry._get_store_with_resolved_uri.cache_clear()
    except (ImportError, AttributeError):
        pass


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _warn(what: str, err: BaseException) -> None:
    print(f"RuntimeWarning: MLflow {what} failed ({type(err).__name__}: {err}); continuing without tracking",
          file=sys.stderr, flush=True)


class Tracker:
    """Context manager around one MLflow run::

        with Tracker("train_gan@dcgan", params=cfg) as tr:
            tr.log_metrics({"loss_d": 0.7}, step=10)
            tr.log_artifact("samples/grid.png")

    Enter it before the stage's heavy imports (torch), so that MLflow starts in parallel with them.
    ``GENDA_MLFLOW=0`` turns tracking off.
    """

    def __init__(self, stage: str, params: dict | None = None, root: Path | None = None,
                 tags: dict | None = None, flush_every: int = 500):
        from genda.runtime.paths import repo_root

        self.stage = stage
        self.params = params or {}
        self.root = Path(root or repo_root())
        self.extra_tags = tags or {}
        self.flush_every = flush_every
        self._buffer: list = []
        self._proc: subprocess.Popen | None = None
        from genda.runtime.distributed import is_main

        self.enabled = os.environ.get("GENDA_MLFLOW", "1") != "0" and is_main()  # rank 0 alone logs

    def tracking_uri(self) -> str:
        return tracking_uri(self.root)

    def _send(self, **msg) -> None:
        if not self.enabled or self._proc is None:
            return
        try:
            self._proc.stdin.write(json.dumps(msg) + "\n")
            self._proc.stdin.flush()
        except (OSError, ValueError) as e:  # the helper died: it has said why
            warnings.warn(f"MLflow helper gone ({type(e).__name__}); continuing without tracking",
                          RuntimeWarning, stacklevel=3)
            self.enabled = False

    def __enter__(self) -> "Tracker":
        if not self.enabled:
            return self
        try:
            if os.environ.get("GENDA_WARM_CHILD") and "mlflow.tracking" in sys.modules:
                self._proc = _ForkedHelper()  # a warm stage (genda.runtime.forkserver): MLflow is imported already
            else:
                self._proc = subprocess.Popen([sys.executable, "-m", "genda.runtime.tracking"], stdin=subprocess.PIPE,
                                              text=True, cwd=self.root)
        except OSError as e:
            _warn("start", e)
            self.enabled = False
            return self
        tags = {"dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""), "dvc_stage": self.stage,
                "mlflow.runName": self.stage, **{k: str(v) for k, v in self.extra_tags.items()}}
        params = {k: str(v)[:6000] for k, v in flatten(self.params).items()}
        self._send(op="start", uri=self.tracking_uri(), root=str(self.root), stage=self.stage, tags=tags,
                   params=params, start_ms=int(time.time() * 1000))
        return self

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        if not self.enabled:
            return
        ts = int(time.time() * 1000)
        self._buffer.extend([k, float(v), ts, int(step)] for k, v in metrics.items() if v is not None)
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self._send(op="metrics", items=self._buffer)
        self._buffer = []

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if Path(path).exists():
            self._send(op="artifact", path=str(Path(path).resolve()), artifact_path=artifact_path)

    def set_tags(self, tags: dict) -> None:
        self._send(op="tags", tags={k: str(v) for k, v in tags.items()})

    def __exit__(self, exc_type, exc, tb) -> None:
        self.flush()
        if self.enabled and "torch" in sys.modules:  # the stage has imported torch by now: record where it ran
            from genda.runtime.records import environment

            self.set_tags({f"env.{k}": v for k, v in flatten(environment()).items()})
        self._send(op="end", status="FINISHED" if exc_type is None else "FAILED")
        if self._proc is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                warnings.warn("MLflow helper did not finish in 300 s; killed", RuntimeWarning, stacklevel=2)
            self._proc = None


class _ForkedHelper:
    """The MLflow helper as a fork of a warm stage process (:mod:`genda.runtime.forkserver`), which has MLflow imported
    already, instead of a fresh ``python -m genda.runtime.tracking`` (~3 s of imports); the same :func:`_worker` reads
    the same JSON lines from a pipe.  Forked when the stage starts, before it runs any torch operation."""

    def __init__(self):
        r, w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the helper
            import signal

            signal.signal(signal.SIGINT, signal.SIG_IGN)
            os.close(w)
            code = 0
            try:
                with os.fdopen(r, "r") as lines:
                    _worker(lines)
            except BaseException:  # noqa: BLE001 - never fall back into the stage's code
                code = 1
            finally:
                os._exit(code)
        os.close(r)
        self.stdin = os.fdopen(w, "w")

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.time() + timeout
        while True:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            if deadline is not None and time.time() > deadline:
                raise subprocess.TimeoutExpired("mlflow helper", timeout)
            time.sleep(0.02)

    def kill(self) -> None:
        import signal

        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except OSError:
            pass


def _is_locked(err: BaseException) -> bool:
    text = f"{type(err).__name__}: {err}".lower()
    return "database is locked" in text or "database table is locked" in text


def _retry(fn, *args, attempts: int = 10, first_wait: float = 0.1, **kwargs):
    """Call fn; while sqlite says the database is locked (another stage is writing), wait and retry
    (0.1, 0.2, 0.4 ... s: about 100 s in all), then give up with the last error."""
    wait = first_wait
    for i in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if not _is_locked(e) or i == attempts - 1:
                raise
            time.sleep(wait)
            wait = min(wait * 2, 20.0)


class _StoreLock:
    """An exclusive file lock beside a sqlite store while it is opened (and created / migrated): two
    stages starting at once must not both create the tables.  No-op for other stores."""

    def __init__(self, uri: str):
        self.path = uri[len("sqlite:///"):] + ".lock" if uri.startswith("sqlite:///") else None
        self._f = None

    def __enter__(self):
        if self.path:
            import fcntl

            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a")
            fcntl.flock(self._f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self._f:
            import fcntl

            fcntl.flock(self._f, fcntl.LOCK_UN)
            self._f.close()


def _worker(lines) -> None:
    """The helper process: one MLflow run driven by JSON lines (see :class:`Tracker`).  After a failure it
    warns once and keeps draining its input, so the stage never blocks on a full pipe."""
    client = run_id = None
    ok, ended = True, False
    for line in lines:
        if not ok:
            continue
        msg = json.loads(line)
        op = msg["op"]
        try:
            if op == "start":
                import logging

                logging.getLogger("alembic").setLevel(logging.WARNING)
                logging.getLogger("mlflow").setLevel(logging.WARNING)
                from mlflow.entities import Param
                from mlflow.tracking import MlflowClient

                with _StoreLock(msg["uri"]):
                    _forget_replaced_store(msg["uri"])
                    client = MlflowClient(msg["uri"])
                    exp = _retry(client.get_experiment_by_name, EXPERIMENT)
                    exp_id = exp.experiment_id if exp else _retry(client.create_experiment, EXPERIMENT)
                sha, dirty = git_commit(Path(msg["root"]))
                tags = {"git_commit": sha, "git_dirty": str(dirty), **msg["tags"]}
                run_id = _retry(client.create_run, exp_id, start_time=msg["start_ms"], tags=tags,
                                run_name=msg["stage"]).info.run_id
                items = [Param(k, v) for k, v in msg["params"].items()]
                for i in range(0, len(items), 100):
                    _retry(client.log_batch, run_id, params=items[i:i + 100])
            elif op == "metrics":
                from mlflow.entities import Metric

                items = [Metric(*m) for m in msg["items"]]
                for i in range(0, len(items), 1000):
                    _retry(client.log_batch, run_id, metrics=items[i:i + 1000])
            elif op == "tags":
                from mlflow.entities import RunTag

                _retry(client.log_batch, run_id, tags=[RunTag(k, v) for k, v in msg["tags"].items()])
            elif op == "artifact":
                client.log_artifact(run_id, msg["path"], msg["artifact_path"])
            elif op == "end":
                _retry(client.set_terminated, run_id, msg["status"])
                ended = True
        except Exception as e:  # unreachable server, bad URI, DB locked ...
            _warn(op, e)
            ok = False
    if ok and run_id is not None and not ended:  # the stage died without saying goodbye (e.g. kill -9)
        try:
            _retry(client.set_terminated, run_id, "KILLED")
        except Exception as e:
            _warn("end", e)


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the stage; the helper then records how it ended
    _worker(sys.stdin)
