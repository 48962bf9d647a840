"""The scoring classifier of conditional generation: a small CNN trained on real images.

Course protocol: a generated digit counts as correct when a classifier trained on the *real* target
domain predicts the label it was generated for, so ``acc(generated) <= acc(real test)`` is the
ceiling.  The same network (``n_classes = 2``) scores a face attribute for ``attr_acgan``.

Network (:class:`DigitClassifier`, width ``w``; shapes for 28x28)::

    x [B,3,28,28] -> block(3, w)   -> [B, w, 14, 14]
                  -> block(w, 2w)  -> [B,2w,  7,  7]
                  -> block(2w, 4w) -> [B,4w,  3,  3]
                  -> global average pool -> Dropout(0.3) -> Linear(4w, K) -> logits [B, K]

    block(i, o) = (Conv3x3 i->o, BN, ReLU, Conv3x3 o->o, BN, ReLU, MaxPool 2)

(Dropout2d inside the blocks slowed early learning ~2x on MNIST-M-like data, so dropout is only
applied before the linear head.)

Training (:func:`train_classifier`): AdamW, cosine-annealed learning rate, cross-entropy; every
batch is augmented on the device (:func:`genda.data.augment.affine_jitter`): a random affine map per image (rotation
``U(-r, r)`` degrees, zoom ``U(1-s, 1+s)``, shift ``U(-t, t)`` of the side, via ``affine_grid`` /
``grid_sample`` with border padding) followed by colour jitter.  All random numbers come from one
seeded CPU generator; checkpoints make an interrupted run resume bit-for-bit on the CPU.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genda.train import optim
from genda.runtime.checkpoint import load_weights, save_atomic
from genda.data.augment import affine_jitter
from genda.data.store import BatchStream
from genda.errors import DataError
from genda.train.loop import TrainLoop, setup, share
from genda.data.tensors import to_float_images

__all__ = ["DigitClassifier", "train_classifier", "load_classifier", "accuracy_report"]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.MaxPool2d(2))


class DigitClassifier(nn.Module):
    """3 conv blocks with BatchNorm + global average pool + linear head (see the module docstring).

    Shapes: ``[B, in_channels, H, W]`` float in ``[-1, 1]`` (H, W >= 8) -> logits ``[B, n_classes]``.
    """

    def __init__(self, n_classes: int = 10, width: int = 32, in_channels: int = 3):
        super().__init__()
        self.n_classes, self.width = n_classes, width
        self.features = nn.Sequential(_block(in_channels, width), _block(width, 2 * width),
                                      _block(2 * width, 4 * width))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(4 * width, n_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))




def train_classifier(cfg: dict, x_train: Tensor, y_train: Tensor, *, n_classes: int = 10, seed: int,
                     device: torch.device, ckpt_dir: Path | None, out_model: Path | None = None, tracker=None,
                     progress: bool = True, tag: str = "classifier",
                     compute: dict | None = None) -> tuple[nn.Module, list[dict]]:
    """Train :class:`DigitClassifier` on uint8 ``x_train [N,3,H,W]`` / int64 ``y_train [N]``.

    ``cfg`` keys: steps, batch_size, lr, weight_decay, width, max_shift, max_rotate, max_scale,
    color_jitter, checkpoint_every, log_every.  ``ckpt_dir=None`` disables checkpoints.
    Returns the model (eval mode) and the loss history; saves ``{"model", "cfg", "n_classes"}`` to
    ``out_model`` if given. ``compute``: the params section of :mod:`genda.runtime.precision`."""
    if len(x_train) != len(y_train):
        raise DataError(f"{tag}: {len(x_train)} images but {len(y_train)} labels")
    gen, c = setup(seed, compute, device)
    model = c.module(DigitClassifier(n_classes, cfg["width"]).to(device))
    opt = optim.build("adamw", model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    share((model,), (opt,))
    sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["steps"])
    x, y = x_train.to(device), y_train.to(device)
    stream = BatchStream(len(x), cfg["batch_size"], seed, device)
    keys = ("steps", "batch_size", "lr", "weight_decay", "width", "max_shift", "max_rotate", "max_scale",
            "color_jitter", "checkpoint_every")

    def restore(st: dict) -> None:
        model.load_state_dict(st["model"]); opt.load_state_dict(st["opt"]); sch.load_state_dict(st["sch"])

    loop = TrainLoop(tag, steps=cfg["steps"], log_every=cfg["log_every"], gen=gen, device=device, ckpt_dir=ckpt_dir,
                     checkpoint_every=cfg["checkpoint_every"], settings={
                         "cfg": {k: cfg[k] for k in keys}, "seed": seed, "n": len(x), "shape": list(x.shape[1:]),
                         "k": n_classes, "compute": c.record()},
                     state=lambda: {"model": model.state_dict(), "opt": opt.state_dict(), "sch": sch.state_dict()},
                     restore=restore, tracker=tracker, progress=progress, postfix={"loss": "loss", "acc": "train_acc"})
    correct, seen = torch.zeros((), device=device), 0  # training accuracy since the last logged step

    def step_fn(step: int):
        nonlocal correct, seen
        model.train()
        idx = stream.indices(step)
        xb = affine_jitter(to_float_images(x[idx]), max_shift=cfg["max_shift"], max_rotate=cfg["max_rotate"],
                           max_scale=cfg["max_scale"], color=cfg["color_jitter"], generator=gen)
        with c.autocast():
            logits = model(c.images(xb))
            loss = F.cross_entropy(logits, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sch.step()
        correct += (logits.detach().argmax(1) == y[idx]).sum()
        seen += len(idx)
        return loss

    def row_fn(loss) -> dict:
        nonlocal correct, seen
        row = {"loss": float(loss.detach()), "train_acc": float(correct) / max(1, seen), "lr": opt.param_groups[0]["lr"]}
        correct, seen = torch.zeros((), device=device), 0
        return row

    history = loop.run(step_fn, row_fn)
    model.eval()
    if out_model is not None:
        save_atomic({"model": model.state_dict(), "cfg": dict(cfg), "n_classes": n_classes, "seed": seed}, out_model)
    loop.finish()
    return model, history


def load_classifier(path: Path, device: torch.device) -> DigitClassifier:
    """Rebuild a classifier saved by :func:`train_classifier` (eval mode)."""
    ck = load_weights(path, map_location=device)
    if not isinstance(ck, dict) or "model" not in ck or "n_classes" not in ck:
        raise DataError(f"{path} is not a classifier file saved by train_classifier")
    model = DigitClassifier(ck["n_classes"], ck["cfg"]["width"]).to(device)
    model.load_state_dict(ck["model"])
    return model.eval()




def accuracy_report(pred: Tensor, labels: Tensor, n_classes: int) -> dict:
    """``{"accuracy", "per_class": {c: acc or None}, "n"}``; accuracy = mean(pred == labels)."""
    pred, labels = pred.cpu().long(), labels.cpu().long()
    ok = (pred == labels).float()
    per = {}
    for c in range(n_classes):
        m = labels == c
        per[str(c)] = float(ok[m].mean()) if bool(m.any()) else None
    return {"accuracy": float(ok.mean()) if len(ok) else float("nan"), "per_class": per, "n": int(len(ok))}
