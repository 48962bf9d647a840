"""Periodic training checkpoints that survive `kill -9`, and resume from them.

A checkpoint holds model/optimiser/scheduler state dicts, the step, RNG states and the loss history,
plus a fingerprint of the settings that produced it.  Rules of :meth:`Checkpointer.load`:

* made under other settings (fingerprint differs) -> never resumed, the run starts fresh;
* a *finished* run (its step equals the run's total) -> never resumed either: a stage that runs again
  after finishing was forced (``dvc repro -f``) or has a changed dependency, so it retrains from scratch --
  unless ``keep_finished``: a stage that trains several runs one after another (``train_da``: one per seed) and
  was interrupted part-way keeps the runs it had finished *in that interrupted stage run* (:class:`StageRun`
  tells which case it is, and tags every checkpoint with its run's token: a finished checkpoint left by an
  earlier, completed run of the stage -- a seed the interrupted run had not reached yet -- is retrained);
* unreadable (corrupt, truncated) -> a warning naming the file, then the previous good checkpoint
  (``prev.pt``, kept by every save) is tried, then a fresh start.  Never a dead end.

Writes are atomic (temp file + ``os.replace``), and the checkpoint being replaced is kept as ``prev.pt``,
so a kill or a disk fault during a save leaves a loadable checkpoint.  In a distributed run every rank
calls :meth:`Checkpointer.save` (it gathers each rank's generator state) and rank 0 alone writes.
Loading uses ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch


def save_atomic(obj: Any, path: str | Path) -> None:
    """Write `obj` with torch.save to `path` atomically.  In a distributed run only rank 0 writes."""
    from genda.runtime import distributed

    if not distributed.is_main():
        return
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
    """Saves `{"step", "fingerprint", "rng", "state": {...}}` to ``<dir>/last.pt`` every `every` steps,
    keeping the checkpoint it replaces as ``<dir>/prev.pt``."""

    def __init__(self, directory: str | Path, every: int, fingerprint: str, total: int | None = None,
                 keep_finished: bool = False):
        self.keep_finished = keep_finished
        self.path = Path(directory) / "last.pt"
        self.prev = Path(directory) / "prev.pt"
        self.every = every
        from genda.runtime import distributed

        # a distributed run draws other batches and noise: its checkpoints resume only at the same world size
        ws = distributed.world_size()
        self.fingerprint = fingerprint if ws == 1 else f"{fingerprint}-world{ws}"
        self.total = total

    def due(self, step: int) -> bool:
        """`step` = number of completed steps."""
        return step > 0 and step % self.every == 0

    def save(self, step: int, state: dict) -> None:
        from genda.runtime import distributed

        rng = rng_state()
        if distributed.world_size() > 1:  # each rank draws its own noise: keep every rank's generators
            rng = {**rng, "ranks": distributed.all_gather_object(rng_state())}
            if "gen" in state:
                state = {**state, "gen_ranks": distributed.all_gather_object(state["gen"])}
        if not distributed.is_main():
            return
        if self.path.exists():  # a kill right after this leaves prev.pt, which load() falls back to
            os.replace(self.path, self.prev)
        save_atomic({"step": step, "fingerprint": self.fingerprint, "rng": rng, "state": state,
                     "world_size": distributed.world_size(), "stage_run": StageRun.active}, self.path)

    def _read(self, path: Path, device) -> dict | None:
        try:
            ck = load_weights(path, map_location=device)
            if not isinstance(ck, dict) or not {"step", "fingerprint", "state"} <= set(ck):
                raise ValueError("not a genda training checkpoint")
            return ck
        except Exception as e:
            msg = str(e) if str(e).startswith("cannot load") else f"cannot load checkpoint {path}: {e}"
            print(f"[checkpoint] warning: {msg}", flush=True)
            return None

    def load(self, device: str | torch.device = "cpu") -> tuple[int, dict] | None:
        """(step, state) of a resumable checkpoint made with the same settings, else None (start fresh)."""
        from genda.runtime import distributed

        for path in (self.path, self.prev):
            if not path.exists():
                continue
            ck = self._read(path, device)
            if ck is None:
                fallback = path == self.path and self.prev.exists()
                print(f"[checkpoint] {f'falling back to the previous checkpoint {self.prev}' if fallback else 'starting fresh'}",
                      flush=True)
                continue
            if ck.get("fingerprint") != self.fingerprint:
                print(f"[checkpoint] {path} was made with other settings; starting fresh")
                return None
            step = int(ck["step"])
            finished = self.total is not None and step >= self.total
            if finished and self.keep_finished and StageRun.active is not None \
                    and ck.get("stage_run") == StageRun.active:
                print(f"[checkpoint] {path} holds a finished run ({step}/{self.total} steps) of an interrupted stage "
                      f"run; kept", flush=True)
            elif finished and self.keep_finished:
                print(f"[checkpoint] {path} holds a finished run ({step}/{self.total} steps) of an earlier run of "
                      f"this stage, not of the interrupted one; retraining from scratch", flush=True)
                return None
            elif finished:
                print(f"[checkpoint] {path} holds a finished run ({step}/{self.total} steps); retraining from "
                      f"scratch (the stage was forced or a dependency changed)")
                return None
            rank = distributed.rank()
            rng = ck["rng"]
            if "ranks" in rng and rank < len(rng["ranks"]):
                rng = rng["ranks"][rank]
            rng["torch"] = rng["torch"].cpu()
            set_rng_state(rng)
            state = ck["state"]
            if "gen_ranks" in state:
                state["gen"] = state.pop("gen_ranks")[rank] if rank < len(state["gen_ranks"]) else state["gen"]
            return step, state
        return None


class StageRun:
    """Whether a stage that trains several runs one after another resumes an *interrupted* run of itself.

    ``<directory>/stage_run.json`` (inside the stage's persistent checkpoint folder) holds
    ``{"complete": bool, "run": token}``. :meth:`begin` returns True when it finds ``complete: false`` -- the stage's
    previous run stopped before :meth:`end` -- and then carries on with that run's token, so the runs it finished
    (same settings, :class:`Checkpointer` ``keep_finished``) are kept rather than retrained; otherwise (no file, or
    the previous run completed: the stage was forced or a dependency changed) it returns False and draws a new
    token. Either way it then marks the run incomplete. While the stage runs, :attr:`active` holds the token and
    every :meth:`Checkpointer.save` records it: a finished checkpoint counts as "finished by the interrupted run"
    only when its token is the active one, so a seed that the interrupted run never reached, whose folder still
    holds a finished checkpoint of an earlier completed run, is retrained (a marker without a token, written before
    tokens existed, keeps nothing). :meth:`end` marks the run complete. In a distributed run every rank takes rank
    0's answer and token, and rank 0 alone writes.
    """

    active: str | None = None  # the token of the stage run in progress in this process (begin() .. end())

    def __init__(self, directory: str | Path):
        self.path = Path(directory) / "stage_run.json"

    def _write(self, complete: bool) -> None:
        from genda.runtime import distributed

        if distributed.is_main():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"complete": complete, "run": StageRun.active}) + "\n")
            os.replace(tmp, self.path)

    def begin(self) -> bool:
        import uuid

        from genda.runtime import distributed

        try:
            marker = json.loads(self.path.read_text())
            resumed = marker.get("complete") is False
            token = marker.get("run") if resumed else None
        except (OSError, ValueError, AttributeError):  # absent or unreadable: a fresh stage run
            resumed, token = False, None
        token = token if isinstance(token, str) and token else uuid.uuid4().hex
        if distributed.world_size() > 1:  # every rank has read before rank 0 writes below
            resumed, token = distributed.all_gather_object((resumed, token))[0]
        if resumed:
            print(f"[checkpoint] {self.path}: resuming an interrupted run of this stage (the runs it finished are "
                  f"kept)", flush=True)
        StageRun.active = token
        self._write(False)
        return resumed

    def end(self) -> None:
        self._write(True)
        StageRun.active = None
