"""Each stage's wall time, recorded beside the pipeline's outputs: ``walls/<stage>.json`` in the folder of the
``dvc.yaml`` that ran it (the default pipeline's ``walls/``, the real profile's ``real/walls/``).

A record is ``{"stage", "wall_s", "machine", "threads", "finished"}``. It is written by :func:`genda.runtime.stage.run`
after a stage's ``main`` returned, only when DVC ran the stage (DVC sets ``DVC_STAGE`` to the stage's address) and
only on the main process. The files are committed with git, never a DVC output: a stage's result does not depend on
them. The ``summary`` stage lists ``walls`` as a dep and sums them into ``total_wall_s``; so that its own dep does
not move under it, the summary and the stages after it (the report) record nothing (``record_wall=False``).
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

FOLDER = Path("walls")


def stage_name() -> str | None:
    """The running stage's name from ``DVC_STAGE`` (``real/dvc.yaml:train_da@x`` -> ``train_da@x``), else None."""
    addr = os.environ.get("DVC_STAGE", "").strip()
    return addr.rsplit(":", 1)[-1] or None


def machine() -> str:
    """``"<cores>-core <CPU model name>"`` from /proc/cpuinfo (no torch import)."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()}-core {model}"


def file_for(stage: str, folder: Path = FOLDER) -> Path:
    """``folder/<stage>.json`` with the characters a file name should not hold replaced (``@`` kept)."""
    return folder / (re.sub(r"[^A-Za-z0-9@._-]", "_", stage) + ".json")


def record(stage: str, wall_s: float, folder: Path = FOLDER, **extra) -> Path:
    """Write the wall record of ``stage`` (replacing an earlier one); returns its path."""
    path = file_for(stage, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = {"stage": stage, "wall_s": round(float(wall_s), 1), "machine": machine(),
           "threads": os.environ.get("GENDA_THREADS") or os.environ.get("OMP_NUM_THREADS") or "default",
           "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=1) + "\n")
    os.replace(tmp, path)
    return path
