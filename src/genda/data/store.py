"""Prepared-tensor files and the in-memory batch stream that training reads from.

Prepared data lives in ``data/prepared/`` as torch files of uint8 images and int64 labels::

    digits/<domain>.pt  {"x_train": uint8 [N,3,S,S], "y_train": int64 [N], "x_test", "y_test", "description"}
    faces.pt           {"x_train": uint8 [N,3,S,S], "x_test", "attrs_train", "attrs_test", "attr_names", "description"}

Training moves a whole split to the device once and draws batches by indexing, so no per-sample
decoding or Python Dataset happens in a training loop.
"""
from __future__ import annotations

from pathlib import Path

import torch

from genda.runtime.checkpoint import load_weights, save_atomic
from genda.errors import DataError

PREPARED = Path("data/prepared")


def digits_path(domain: str, root: Path | None = None) -> Path:
    return (root or Path(".")) / PREPARED / "digits" / f"{domain}.pt"


def faces_path(root: Path | None = None) -> Path:
    return (root or Path(".")) / PREPARED / "faces.pt"


def binary_attributes(attrs: torch.Tensor) -> torch.Tensor:
    """A face set's attribute table (0/1 or -1/+1, any dtype) -> long 0/1."""
    return (attrs.float() > 0.5).long()


def save_prepared(obj: dict, path: Path) -> None:
    save_atomic(obj, path)


def load_prepared(path: Path, kind: str = "digits") -> dict:
    """Load and sanity-check a prepared file; DataError naming the file if it is malformed."""
    d = load_weights(path)
    need = ["x_train", "x_test"] + (["y_train", "y_test"] if kind == "digits" else [])
    missing = [k for k in need if k not in d]
    if missing:
        raise DataError(f"{path}: prepared file lacks {missing}; rerun `dvc repro prepare`")
    for split in ("train", "test"):
        x = d[f"x_{split}"]
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise DataError(f"{path}: x_{split} must be uint8 [N,3,H,W], got {x.dtype} {tuple(x.shape)}")
        if kind == "digits":
            y = d[f"y_{split}"]
            if len(y) != len(x):
                raise DataError(f"{path}: {len(x)} images but {len(y)} labels in the {split} split")
            if len(y) and (int(y.min()) < 0 or int(y.max()) > 9):
                raise DataError(f"{path}: labels of the {split} split outside 0..9")
    return d


class BatchStream:
    """Endless shuffled mini-batches from tensors already on the device, resumable by step number.

    Epoch `e` uses the permutation drawn from ``Generator().manual_seed(seed * 1_000_003 + e)``, so the
    batch at any step is a pure function of (seed, step): resuming at step s reproduces exactly the
    batches an uninterrupted run would have seen, without saving any sampler state.  The last partial
    batch of an epoch is dropped.

    In a distributed run (:mod:`genda.runtime.distributed`) every rank draws the same global batch of
    ``batch_size`` and keeps its own contiguous shard of ``batch_size / world_size`` images;
    :attr:`batch_size` is then the per-rank size.
    """

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device | str = "cpu"):
        from genda.runtime import distributed

        if n < 1:
            raise DataError("cannot draw batches from an empty split")
        self.n, self.seed, self.device = n, seed, device
        self.global_batch = min(batch_size, n)
        self.world, self.rank = distributed.world_size(), distributed.rank()
        if self.global_batch % self.world:
            from genda.errors import ConfigError

            raise ConfigError(f"batch size {self.global_batch} cannot be split over {self.world} processes; "
                              f"use a multiple of {self.world} (or another GENDA_NPROC)")
        self.batch_size = self.global_batch // self.world
        self.per_epoch = max(1, n // self.global_batch)
        self._epoch, self._perm = -1, None

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(self.n, generator=g).to(self.device)
            self._epoch = epoch
        start = i * self.global_batch + self.rank * self.batch_size
        return self._perm[start:start + self.batch_size]
