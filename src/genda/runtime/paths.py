"""Where the project is: its root (``$GENDA_ROOT`` or the nearest folder with params.yaml) and paths relative to it."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The project root: $GENDA_ROOT, else the nearest parent of the cwd that has params.yaml."""
    env = os.environ.get("GENDA_ROOT")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd().resolve()
    for p in (cwd, *cwd.parents):
        if (p / "params.yaml").exists():
            return p
    return cwd


def resolve_path(p: str, base: Path | None = None) -> Path:
    path = Path(os.path.expanduser(p))
    return path if path.is_absolute() else (base or repo_root()) / path
