"""Training MSG-Net over every style of ``style.styles`` at once, on :class:`genda.train.loop.TrainLoop` (resume,
checkpoints, logging, timing as every genda trainer).

One step, as the reference training loop (Zhang & Dana 2017, Sec. 4):

1. the style of the step, ``styles[step % n_styles]``, goes through the Siamese encoder: the CoMatch target
   :math:`G(E(s))` (:meth:`genda.style.models.msgnet.MSGNet.set_style`), with its graph, so the encoder learns from
   both branches;
2. a content batch ``x [B, 3, S, S]`` (:func:`genda.style.images.training_content`, drawn by
   :class:`genda.data.store.BatchStream`) is stylised, ``y = MSGNet(x)``;
3. the loss network (:mod:`genda.style.vgg`, frozen) gives
   :math:`w_c \\ell_c(y, x) + w_s \\ell_s(y, s) + w_{tv} \\ell_{tv}(y)` (:mod:`genda.style.losses`; the style's
   Grams at ``style_size`` computed once), and Adam takes one step.

The model file ``{"model", "cfg", "styles", "loss_network"}`` holds only what training computed (its wall time goes
to ``metrics/style/timing.json``, :mod:`genda.train.timing`), so the same params write the same bytes on one CPU.
"""
from __future__ import annotations

from pathlib import Path

import torch

from genda.data.store import BatchStream
from genda.data.tensors import to_float_images
from genda.errors import DataError
from genda.runtime.checkpoint import load_weights, save_atomic
from genda.style.images import style_image
from genda.style.losses import objective, style_grams
from genda.style.models import MSGNet
from genda.style.vgg import load_loss_network
from genda.train.loop import TrainLoop, setup, share

__all__ = ["TRAIN_KEYS", "train_style", "load_stylizer"]

# the style-section keys that change what training computes (the checkpoint fingerprint and the model file's cfg)
TRAIN_KEYS = ("styles", "vgg_weights", "vgg_seed", "steps", "batch_size", "image_size", "style_size", "ngf",
              "n_blocks", "lr", "content_weight", "style_weight", "tv_weight", "photo_crops", "checkpoint_every")


def train_style(cfg: dict, content: torch.Tensor, *, seed: int, device: torch.device, ckpt_dir: Path | None,
                out_model: Path | None = None, loss_csv: Path | None = None, tracker=None, progress: bool = True,
                compute: dict | None = None) -> tuple[MSGNet, list[dict], float]:
    """Train :class:`MSGNet` on uint8 ``content [N, 3, S, S]`` against the styles ``cfg["styles"]`` (module
    docstring). Returns (model in eval mode, loss history, training seconds summed over resumptions)."""
    if content.dtype != torch.uint8 or content.ndim != 4 or content.shape[-1] % 4 or content.shape[-2] % 4:
        raise DataError(f"style training content must be uint8 [N,3,S,S] with S a multiple of 4, "
                        f"got {content.dtype} {tuple(content.shape)}")
    gen, c = setup(seed, compute, device)
    vgg, vgg_name = load_loss_network(cfg["vgg_weights"], cfg["vgg_seed"], device)
    vgg = c.module(vgg)
    model = c.module(MSGNet(cfg["ngf"], cfg["n_blocks"]).to(device))
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    share((model,), (opt,))
    styles = [c.images(to_float_images(style_image(s, cfg["style_size"])).to(device)) for s in cfg["styles"]]
    with torch.no_grad():
        grams = [style_grams(vgg(s)) for s in styles]  # fp32 targets: the loss network is frozen
    x_all = content.to(device)
    stream = BatchStream(len(x_all), cfg["batch_size"], seed, device)
    weights = {k: cfg[k] for k in ("content_weight", "style_weight", "tv_weight")}

    def restore(st: dict) -> None:
        model.load_state_dict(st["model"]); opt.load_state_dict(st["opt"])

    loop = TrainLoop("train_style", steps=cfg["steps"], log_every=cfg["log_every"], gen=gen, device=device,
                     ckpt_dir=ckpt_dir, checkpoint_every=cfg["checkpoint_every"],
                     settings={"cfg": {k: cfg[k] for k in TRAIN_KEYS}, "seed": seed, "n": len(x_all),
                               "shape": list(x_all.shape[1:]), "compute": c.record()},
                     state=lambda: {"model": model.state_dict(), "opt": opt.state_dict()}, restore=restore,
                     tracker=tracker, progress=progress, postfix={"loss": "loss", "style": "style", "content": "content"})

    def step_fn(step: int):
        model.train()
        k = step % len(styles)
        x = c.images(to_float_images(x_all[stream.indices(step)]))
        with c.autocast():
            model.set_style(styles[k])
            y = model(x)
            with torch.no_grad():
                fx = vgg(x)
            total, lc, ls = objective(vgg(y), fx, grams[k], y, weights)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        return total.detach(), lc.detach(), ls.detach(), k

    def row_fn(out) -> dict:
        total, lc, ls, k = out
        return {"loss": float(total), "content": float(lc), "style": float(ls), "style_index": k}

    history = loop.run(step_fn, row_fn)
    model.eval()
    if out_model is not None:
        save_atomic({"model": model.state_dict(), "cfg": {k: cfg[k] for k in TRAIN_KEYS}, "styles": list(cfg["styles"]),
                     "loss_network": vgg_name, "seed": seed}, out_model)
    wall = loop.wall()
    loop.finish(loss_csv)
    return model, history, wall


def load_stylizer(path: Path, device: torch.device) -> tuple[MSGNet, dict]:
    """(MSGNet in eval mode, the model file's dict without the weights) of a file saved by :func:`train_style`."""
    ck = load_weights(path, map_location=device)
    if not isinstance(ck, dict) or not {"model", "cfg", "styles"} <= set(ck):
        raise DataError(f"{path} is not an MSG-Net file saved by train_style; rerun `dvc repro train_style`")
    model = MSGNet(ck["cfg"]["ngf"], ck["cfg"]["n_blocks"]).to(device)
    model.load_state_dict(ck["model"])
    return model.eval(), {k: v for k, v in ck.items() if k != "model"}
