"""Training wall times, kept beside a model file instead of in it.

A model file holds only what training computed -- weights, and the training curve's steps with its accuracies
or samples -- so the same params and seed on one machine write the same bytes. DVC then sees a retraining that
changed nothing (``dvc repro -f``, a trainer edit that keeps the numerics, a fresh clone) as no change, and
reruns no sampling, evaluation or t-SNE downstream of it. The wall times, which differ on every run, go to a
small JSON under ``metrics/`` (a ``cache: false`` output of the training stage) that only the report's
accuracy-against-training-time figures read.

File format, one entry per model file of the stage (the DA stages write one model per seed)::

    {"seed0.pt": {"train_seconds": 812.4, "curve_wall_s": [[1000, 160.2], [2000, 321.0], ...]}, ...}

``curve_wall_s`` pairs each curve step with the training seconds before it (evaluation excluded, summed over
resumptions), as the trainers measure them.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from genda.errors import DataError
from genda.runtime.records import write_json


def split_curve(curve: list[dict]) -> tuple[list[dict], list[list[float]]]:
    """(curve rows without ``wall_s``, ``[[step, wall_s], ...]``) of a trainer's curve.

    The rows' keys are interned: rows restored from a checkpoint carry unpickled key strings, distinct objects
    from the code's literals, and pickle's memo (by object identity) would then write the same values as
    different bytes in a resumed run than in an uninterrupted one."""
    rows = [{sys.intern(k): v for k, v in r.items() if k != "wall_s"} for r in curve]
    return rows, [[r["step"], r["wall_s"]] for r in curve]


def write_timing(path: Path, model_file: str, *, train_seconds: float, curve_wall_s: list[list[float]]) -> None:
    """Add (or replace) ``model_file``'s entry in the timing JSON ``path``; other entries are kept.

    Safe when several processes train the seeds of one setting at once (``benchmarks/realdata/da_runs.py``): the
    read-modify-write holds an exclusive lock on the folder. An existing file that is not a timing JSON is a
    DataError naming it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(path.parent):
        entries = {}
        if path.exists():
            try:
                entries = json.loads(path.read_text())
                if not isinstance(entries, dict):
                    raise ValueError("not a mapping")
            except ValueError as e:
                raise DataError(f"{path}: not a timing file ({e}); delete it or rerun the training stage") from None
        entries[model_file] = {"train_seconds": round(float(train_seconds), 2), "curve_wall_s": curve_wall_s}
        write_json(entries, path)


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """An exclusive ``flock`` on ``folder`` itself (no lock file left behind); a no-op without fcntl."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no concurrent writers are supported there
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_timing(path: Path, model_file: str) -> dict:
    """``{"train_seconds": s, "wall_s": {step: seconds}}`` of ``model_file`` from the timing JSON ``path``."""
    path = Path(path)
    try:
        e = json.loads(path.read_text())[model_file]
        return {"train_seconds": float(e["train_seconds"]),
                "wall_s": {int(s): float(w) for s, w in e["curve_wall_s"]}}
    except FileNotFoundError:
        raise DataError(f"{path}: missing; the training stage that wrote {model_file} writes it "
                        "(rerun it: `dvc repro`)") from None
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: no valid timing entry for {model_file} ({type(e).__name__}: {e}); expected "
                        '{"<model file>": {"train_seconds": s, "curve_wall_s": [[step, s], ...]}}') from None


def join_wall_s(df, locate):
    """``df`` (a curve table with ``setting``, ``seed`` and ``step`` columns) with a ``wall_s`` column taken
    from the timing files: ``locate(setting, seed) -> (timing json, model file name)``. A curve step the
    timing file does not have is a DataError naming the file (the curve and the timing come from one run)."""
    df = df.copy()
    walls, cache = [], {}
    for setting, seed, step in zip(df["setting"], df["seed"], df["step"]):
        path, model_file = locate(setting, int(seed))
        if (path, model_file) not in cache:
            cache[path, model_file] = read_timing(path, model_file)["wall_s"]
        w = cache[path, model_file]
        if int(step) not in w:
            raise DataError(f"{path}: no wall time for step {int(step)} of {model_file} (the curve and its timing "
                            "come from different runs; rerun the training stage)")
        walls.append(w[int(step)])
    df["wall_s"] = walls
    return df


def curve_table(csv: Path):
    """A pipeline curve CSV (``metrics/da/curves/<pair>.csv`` of ``evaluate_da``, ``metrics/cond/curves/<name>.csv``
    of ``evaluate_cond``) with the trainings' wall times joined from the timing files of the same ``metrics/``
    folder (``metrics/da/<pair>/<setting>/timing.json`` entry ``seed<k>.pt``, ``metrics/cond/<name>/timing.json``
    entry ``model.pt``), as the report plots it. A table that already has ``wall_s`` (a CSV written before the
    wall times moved out of the models) is returned as it is; None when ``csv`` is absent."""
    import pandas as pd

    csv = Path(csv)
    if not csv.exists():
        return None
    df = pd.read_csv(csv)
    if "wall_s" in df or not len(df):
        return df
    kind = csv.parent.parent.name if csv.parent.name == "curves" else None
    if kind not in ("da", "cond"):
        raise DataError(f"{csv}: a curve table without wall_s outside the pipeline's metrics/<da|cond>/curves/ "
                        "layout, so its timing files cannot be found; keep a copy of curve_table(csv) instead "
                        "(it has the wall times joined)")
    metrics = csv.parents[2]
    if kind == "da":
        return join_wall_s(df, lambda s, seed: (metrics / "da" / csv.stem / s / "timing.json", f"seed{seed}.pt"))
    return join_wall_s(df, lambda s, seed: (metrics / "cond" / s / "timing.json", "model.pt"))
