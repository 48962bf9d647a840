"""Result files: JSON written the same way everywhere (sorted keys, trailing newline, rank 0 only), and metrics
JSONs that carry the environment that produced them (:func:`environment`)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from genda.runtime import device as _device


def write_json(obj, path: str | Path) -> None:
    """Write JSON (sorted keys, trailing newline); in a distributed run only rank 0 writes."""
    from genda.runtime.distributed import is_main

    if not is_main():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_metrics(obj: dict, path: str | Path) -> None:
    """A metrics JSON with the environment that produced it under ``env`` (see :func:`environment`)."""
    write_json({**obj, "env": environment()}, path)


def environment(precision: str | None = None) -> dict:
    """What produced a number: versions, device, CPU ISA, threads, processes, precision.

    Written next to every metric (``env`` in ``metrics/**.json``) and as ``env.*`` tags of every MLflow run."""
    import platform

    from genda.runtime.allocator import applied
    from genda.runtime.distributed import world_size
    from genda.runtime.precision import active

    precision = precision or active()

    dev = _device.get_device()
    env = {"torch": torch.__version__, "cuda": torch.version.cuda or "none",
           "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "threads": torch.get_num_threads(), "world_size": world_size(), "precision": precision,
           "python": platform.python_version(), "platform": platform.platform(terse=True),
           "malloc": "keep_heap" if applied() else "default"}
    env.update(_device.cpu_info())
    return env
