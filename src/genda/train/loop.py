"""The training skeleton that every genda trainer plugs into: :class:`TrainLoop`.

The four trainers (:func:`genda.gan.train.train_gan`, :func:`genda.da.train.train_da`,
:func:`genda.cond.train.train_cond`, :func:`genda.metrics.digit_classifier.train_classifier`) differ only in what
one step does and what the model file holds. Everything around that lives here, once.

What the loop owns:

* **set-up** -- :func:`setup` seeds every RNG (:func:`genda.rng.seed_everything`; the returned CPU generator is
  the trainer's one source of random draws) and resolves the ``compute`` section
  (:class:`genda.runtime.precision.Compute`); :func:`share` gives every rank rank 0's weights and averages the
  optimisers' gradients over the ranks (:mod:`genda.runtime.distributed`; no-ops in a single process);
* **checkpoints and resume** -- a :class:`~genda.runtime.checkpoint.Checkpointer` fingerprinted with the
  trainer's ``settings`` (none when ``ckpt_dir`` is None), saved every ``checkpoint_every`` steps and at the end.
  A checkpoint's state is ``{**state(), "gen", "history"}`` (+ ``"curve", "wall_s"`` with ``timed_curve``); on
  resume ``restore(state)`` gets it back, then the loop restores the generator, the history (and curve and wall
  time) and says ``[<tag>] resumed from step <n> (<path>)``;
* **the steps** -- ``for step in range(start, steps): out = step_fn(step)``, then, every ``log_every`` steps and
  at the last one, the history row ``{"step": done, **row_fn(out)}`` (``row_fn`` runs only then, so a trainer's
  host syncs -- ``float(loss)`` -- happen on logged steps only), the progress bar's postfix and the tracker's
  metrics (every key but ``step``, prefixed by ``metric_prefix``);
* **the training curve** (``curve_every > 0``, rank 0) -- every ``curve_every`` steps and at the last one, the row
  ``{"step", "wall_s", **curve_fn(done)}``; the curve's own time is excluded from :meth:`TrainLoop.wall`;
* **timing** -- :meth:`TrainLoop.wall`: training seconds so far, summed over resumptions, evaluation excluded (the
  wall times go beside the model file, :mod:`genda.train.timing`); ``train_seconds`` to the tracker at the end;
* **the end** -- :meth:`TrainLoop.finish`: the final checkpoint, the loss CSV, ``train_seconds``.

What a trainer provides: its models, optimisers, batch streams and ``settings`` (for the fingerprint);
``state()`` / ``restore(state)`` for its own part of a checkpoint; ``step_fn(step)`` (one optimisation step, any
return value) and ``row_fn(out)`` (the logged numbers of it); optionally ``curve_fn(done)``; and, between
:meth:`TrainLoop.run` and :meth:`TrainLoop.finish`, its model file.

Bit-for-bit: the loop draws no random numbers and calls the trainer's functions in the order the trainers always
had (step, log row, curve, checkpoint), so an interrupted run resumes to the same bytes on the CPU.
"""
from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from genda.rng import fingerprint, seed_everything
from genda.runtime import distributed
from genda.runtime.checkpoint import Checkpointer

__all__ = ["TrainLoop", "setup", "share", "write_history"]


def setup(seed: int, compute: dict | None, device: torch.device):
    """(CPU generator, :class:`~genda.runtime.precision.Compute`): every RNG seeded with ``seed`` (per rank), then
    the ``compute`` section resolved for ``device``. Call it first: model initialisation draws from the seeded
    global RNG."""
    from genda.runtime.precision import Compute

    gen = seed_everything(seed)
    return gen, Compute(compute, device)


def share(modules=(), optimizers=()) -> None:
    """Rank 0's parameters and buffers on every rank, and gradient averaging before each optimiser step (in
    place: optimisers built before or after keep working; no-ops without a process group)."""
    distributed.broadcast_modules(*modules)
    distributed.sync_optimizer(*[o for o in optimizers if isinstance(o, torch.optim.Optimizer)])


class TrainLoop:
    """Resume, ``steps`` steps with logging, curve and checkpoints, and the final checkpoint (module docstring).

    ``tag`` names the run in messages (``desc``: the progress bar's label, default ``tag``); ``postfix`` maps a
    progress-bar label to a history key (default: every key starting with ``loss``)."""

    def __init__(self, tag: str, *, steps: int, log_every: int, gen: torch.Generator, device: torch.device,
                 ckpt_dir: Path | None, checkpoint_every: int, settings: Any,
                 state: Callable[[], dict], restore: Callable[[dict], None], tracker=None, metric_prefix: str = "",
                 progress: bool = True, desc: str | None = None, postfix: dict[str, str] | None = None,
                 timed_curve: bool = False) -> None:
        self.tag, self.desc = tag, desc or tag
        self.steps, self.log_every = steps, log_every
        self.gen, self.device = gen, device
        self.ck = (Checkpointer(ckpt_dir, checkpoint_every, fingerprint(settings), total=steps)
                   if ckpt_dir is not None else None)
        self._state, self._restore = state, restore
        self.tracker, self.prefix, self.progress, self.postfix = tracker, metric_prefix, progress, postfix
        self.timed_curve = timed_curve
        self.start, self.history, self.curve = 0, [], []
        self.wall0, self.eval_s, self.t0 = 0.0, 0.0, time.time()

    # ------------------------------------------------------------------ state
    def resume(self) -> int:
        """Restore the newest resumable checkpoint, if any; the first step to run."""
        resumed = self.ck.load(self.device) if self.ck else None
        if resumed:
            self.start, st = resumed
            self._restore(st)
            self.gen.set_state(st["gen"].cpu())  # checkpoints load onto `device`; generator states live on the CPU
            self.history = list(st["history"])
            if self.timed_curve:
                self.curve, self.wall0 = list(st.get("curve", [])), float(st.get("wall_s", 0.0))
            print(f"[{self.tag}] resumed from step {self.start} ({self.ck.path})")
        return self.start

    def state(self) -> dict:
        st = {**self._state(), "gen": self.gen.get_state(), "history": self.history}
        if self.timed_curve:
            st.update(curve=self.curve, wall_s=self.wall())
        return st

    def wall(self) -> float:
        """Training seconds so far: summed over resumptions, curve evaluations excluded."""
        return self.wall0 + time.time() - self.t0 - self.eval_s

    # ------------------------------------------------------------------ steps
    def run(self, step_fn: Callable[[int], Any], row_fn: Callable[[Any], dict], *,
            curve_fn: Callable[[int], dict] | None = None, curve_every: int = 0, log_curve: bool = False) -> list[dict]:
        """Resume, then run the remaining steps; the history. ``log_curve``: the curve rows go to the tracker too
        (as ``<prefix>curve_<key>``)."""
        from tqdm import tqdm

        start, steps = self.resume(), self.steps
        self.t0 = time.time()
        bar = tqdm(range(start, steps), initial=start, total=steps, desc=self.desc,
                   disable=not (self.progress and distributed.is_main()), mininterval=5)
        for step in bar:
            out = step_fn(step)
            done = step + 1
            if done % self.log_every == 0 or done == steps:
                row = {"step": done, **row_fn(out)}
                self.history.append(row)
                keys = self.postfix or {k: k for k in row if k.startswith("loss")}
                bar.set_postfix({label: f"{row[k]:.3f}" for label, k in keys.items()})
                if self.tracker:
                    self.tracker.log_metrics({f"{self.prefix}{k}": v for k, v in row.items() if k != "step"},
                                             step=done)
            if curve_fn and curve_every and distributed.is_main() and (done % curve_every == 0 or done == steps):
                self._curve_point(done, curve_fn, log_curve)
            if self.ck and self.ck.due(done) and done < steps:
                self.ck.save(done, self.state())
        return self.history

    def _curve_point(self, done: int, curve_fn: Callable[[int], dict], log: bool) -> None:
        te = time.time()
        row = {"step": done, "wall_s": round(self.wall(), 2)}
        row.update(curve_fn(done))
        self.curve.append(row)
        if log and self.tracker:
            self.tracker.log_metrics({f"{self.prefix}curve_{k}": v for k, v in row.items() if k != "step"}, step=done)
        self.eval_s += time.time() - te

    # ------------------------------------------------------------------ end
    def finish(self, loss_csv: Path | None = None) -> None:
        """After the trainer saved its model file: the final checkpoint, the loss CSV, ``train_seconds``."""
        if self.ck:
            self.ck.save(self.steps, self.state())
        if loss_csv:
            write_history(self.history, loss_csv)
        if self.tracker:
            self.tracker.log_metrics({f"{self.prefix}train_seconds": time.time() - self.t0}, step=self.steps)


def write_history(history: list[dict], path: Path) -> None:
    """The loss history as a CSV (rank 0 only); a header-only ``step`` file when empty."""
    if not distributed.is_main():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not history:
        path.write_text("step\n")
        return
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
