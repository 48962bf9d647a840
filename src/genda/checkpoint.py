"""Periodic training checkpoints that survive `kill -9`, and resume from them.

A checkpoint holds model/optimiser/scheduler state dicts, the step, RNG states and the loss history,
plus a fingerprint of the settings that produced it: a checkpoint made under other settings is never
resumed (the run starts fresh instead).  Writes are atomic (temp file + ``os.replace``) so a kill during
a save leaves the previous checkpoint intact.  Loading uses ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def save_atomic(obj: Any, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_weights(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load(..., weights_only=True)` with an error that names the file."""
    from genda.errors import DataError

    path = Path(path)
    if not path.exists():
        raise DataError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt / not a torch file / unsafe pickle
        raise DataError(f"cannot load checkpoint {path}: {e}") from None


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """Saves `{"step", "fingerprint", "state": {...}}` to ``<dir>/last.pt`` every `every` steps."""

    def __init__(self, directory: str | Path, every: int, fingerprint: str):
        self.path = Path(directory) / "last.pt"
        self.every = every
        self.fingerprint = fingerprint

    def due(self, step: int) -> bool:
        """`step` = number of completed steps."""
        return step > 0 and step % self.every == 0

    def save(self, step: int, state: dict) -> None:
        save_atomic({"step": step, "fingerprint": self.fingerprint, "rng": rng_state(), "state": state}, self.path)

    def load(self, device: str | torch.device = "cpu") -> tuple[int, dict] | None:
        """(step, state) of a resumable checkpoint made with the same settings, else None."""
        if not self.path.exists():
            return None
        ck = load_weights(self.path, map_location=device)
        if ck.get("fingerprint") != self.fingerprint:
            print(f"[checkpoint] {self.path} was made with other settings; starting fresh")
            return None
        rng = ck["rng"]
        rng["torch"] = rng["torch"].cpu()
        set_rng_state(rng)
        return int(ck["step"]), ck["state"]
