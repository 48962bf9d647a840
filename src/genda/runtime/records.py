"""Result files: JSON written the same way everywhere (sorted keys, trailing newline, rank 0 only), and metrics
JSONs that carry the environment that produced them."""
from __future__ import annotations

import json
from pathlib import Path


def write_json(obj, path: str | Path) -> None:
    """Write JSON (sorted keys, trailing newline); in a distributed run only rank 0 writes."""
    from genda.runtime.distributed import is_main

    if not is_main():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_metrics(obj: dict, path: str | Path) -> None:
    """A metrics JSON with the environment that produced it under ``env`` (see :func:`genda.runtime.device.environment`)."""
    from genda.runtime.device import environment

    write_json({**obj, "env": environment()}, path)
