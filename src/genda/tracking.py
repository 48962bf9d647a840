"""MLflow run logging for every train/evaluate stage — never fatal.

Tracking URI: ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the project root.  Each run is
tagged with the git commit (and whether the tree was dirty), ``DVC_EXP_NAME`` (set by ``dvc exp run``)
and the DVC stage name, so every number in MLflow points back to a commit, params and a checkpoint.
If the tracking server is unreachable or MLflow fails in any way, a single warning is printed and
training goes on; metrics are buffered and sent in batches so per-step logging stays cheap.
"""
from __future__ import annotations

import os
import subprocess
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


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


class Tracker:
    """Context manager around one MLflow run::

        with Tracker("train_gan@dcgan", params=cfg) as tr:
            tr.log_metrics({"loss_d": 0.7}, step=10)
            tr.log_artifact("samples/grid.png")
    """

    def __init__(self, stage: str, params: dict | None = None, root: Path | None = None,
                 tags: dict | None = None, flush_every: int = 500):
        from genda.config import repo_root

        self.stage = stage
        self.params = params or {}
        self.root = Path(root or repo_root())
        self.extra_tags = tags or {}
        self.flush_every = flush_every
        self._buffer: list = []
        self._run = None
        self._client = None
        self.enabled = os.environ.get("GENDA_MLFLOW", "1") != "0"
        self.run_id: str | None = None

    # --- helpers
    def _fail(self, what: str, err: Exception) -> None:
        warnings.warn(f"MLflow {what} failed ({type(err).__name__}: {err}); continuing without tracking",
                      RuntimeWarning, stacklevel=3)
        self.enabled = False

    def tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.root / 'mlflow.db'}"

    def __enter__(self) -> "Tracker":
        if not self.enabled:
            return self
        try:
            import logging

            logging.getLogger("alembic").setLevel(logging.WARNING)
            logging.getLogger("mlflow").setLevel(logging.WARNING)
            import mlflow
            from mlflow.tracking import MlflowClient

            uri = self.tracking_uri()
            mlflow.set_tracking_uri(uri)
            self._client = MlflowClient(uri)
            exp = self._client.get_experiment_by_name(EXPERIMENT)
            exp_id = exp.experiment_id if exp else self._client.create_experiment(EXPERIMENT)
            sha, dirty = git_commit(self.root)
            tags = {
                "git_commit": sha,
                "git_dirty": str(dirty),
                "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
                "dvc_stage": self.stage,
                "mlflow.runName": self.stage,
                **{k: str(v) for k, v in self.extra_tags.items()},
            }
            run = self._client.create_run(exp_id, tags=tags, run_name=self.stage)
            self.run_id = run.info.run_id
            from mlflow.entities import Param

            flat = flatten(self.params)
            items = [Param(k, str(v)[:6000]) for k, v in flat.items()]
            for i in range(0, len(items), 100):
                self._client.log_batch(self.run_id, params=items[i:i + 100])
        except Exception as e:  # unreachable server, bad URI, DB locked ...
            self._fail("start", e)
        return self

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        if not self.enabled or self.run_id is None:
            return
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        for k, v in metrics.items():
            if v is None:
                continue
            self._buffer.append(Metric(k, float(v), ts, int(step)))
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self.enabled or self.run_id is None or not self._buffer:
            return
        try:
            for i in range(0, len(self._buffer), 1000):
                self._client.log_batch(self.run_id, metrics=self._buffer[i:i + 1000])
        except Exception as e:
            self._fail("log_batch", e)
        self._buffer = []

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if not self.enabled or self.run_id is None or not Path(path).exists():
            return
        try:
            self._client.log_artifact(self.run_id, str(path), artifact_path)
        except Exception as e:
            self._fail("log_artifact", e)

    def set_tags(self, tags: dict) -> None:
        if not self.enabled or self.run_id is None:
            return
        try:
            for k, v in tags.items():
                self._client.set_tag(self.run_id, k, str(v))
        except Exception as e:
            self._fail("set_tag", e)

    def __exit__(self, exc_type, exc, tb) -> None:
        self.flush()
        if self.enabled and self.run_id is not None:
            try:
                self._client.set_terminated(self.run_id, "FINISHED" if exc_type is None else "FAILED")
            except Exception as e:
                self._fail("end", e)
