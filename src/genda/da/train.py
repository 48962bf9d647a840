"""One domain-adaptation trainer for every setting of a source→target pair.

A *setting* names which data a method sees:

=====================  ===================  ==========================  ========================
setting                method               labelled batch (xs, ys)     unlabelled batch (xt)
=====================  ===================  ==========================  ========================
source_only            source_only          source train                —
target_only            source_only          target train (upper bound)  —
dann / dsn / ...       same name            source train                target train (no labels)
=====================  ===================  ==========================  ========================

Optimisation follows DANN (Ganin et al. 2016): SGD (momentum 0.9) with the annealed learning rate
μ_p = μ0 / (1 + α·p)^β, p = step / steps ∈ [0, 1]; the method itself schedules its GRL λ(p).  Images
stay on the device as uint8 and are jittered in batches (ColorJitter-like) on the device.
"""
from __future__ import annotations

from pathlib import Path

import torch

from genda.runtime import distributed
from genda.train import optim
from genda.runtime.checkpoint import load_weights, save_atomic
from genda.data.augment import color_jitter
from genda.data.store import BatchStream
from genda.da.grl import annealed_lr
from genda.data.tensors import predict_labels, to_float_images
from genda.train.loop import TrainLoop, setup, share
from genda.train.timing import split_curve, write_timing

SUPERVISED = {"source_only": ("source_only", "source"), "target_only": ("source_only", "target"),
              "resnet_source_only": ("resnet_source_only", "source")}


def setting_plan(setting: str) -> tuple[str, str, bool]:
    """(method name, which domain is labelled, whether unlabelled target batches are used)."""
    if setting in SUPERVISED:
        method, labelled = SUPERVISED[setting]
        return method, labelled, False
    return setting, "source", True




def train_da(setting: str, options: dict, da: dict, src: dict, tgt: dict, *, seed: int, device: torch.device,
             ckpt_dir: Path, out_model: Path, tracker=None, progress: bool = True,
             compute: dict | None = None, out_timing: Path | None = None, keep_finished: bool = False) -> list[dict]:
    """Train one (pair, setting, seed); `src`/`tgt` are prepared dicts (uint8 x, int64 y); ``compute``: the
    params section of :mod:`genda.runtime.precision` (precision, channels_last).

    Every ``da.eval_every`` steps (0 = never) the model is scored on both test splits; the rows
    ``{step, wall_s, target_acc, source_acc}`` (wall_s: training seconds so far, evaluation excluded, summed
    over resumptions) form the training curve. It is a report only: nothing in training reads it (picking a
    stopping point on target labels would not be unsupervised adaptation). The model file keeps the curve
    without wall times, so a rerun writes the same bytes; the wall times and ``train_seconds`` go to
    ``out_timing`` under the model file's name (:mod:`genda.train.timing`). ``keep_finished``: a finished
    checkpoint of these settings is kept, not retrained (the stage resumes an interrupted run of itself:
    :class:`genda.runtime.checkpoint.StageRun`); the model file is then written from it, byte-identical.
    """
    from genda.da.methods import build_method

    method_name, labelled, uses_target = setting_plan(setting)
    gen, c = setup(seed, compute, device)
    model = c.module(build_method(method_name, n_classes=10, **options).to(device))
    lab = src if labelled == "source" else tgt
    xs_all, ys_all = lab["x_train"].to(device), lab["y_train"].to(device)
    xt_all = tgt["x_train"].to(device) if uses_target else None
    s_stream = BatchStream(len(xs_all), da["batch_size"], seed, device)
    t_stream = BatchStream(len(xt_all), da["batch_size"], seed + 7919, device) if uses_target else None
    groups = model.param_groups(da["lr"])  # each carries base_lr (e.g. a pretrained backbone at 0.1x)
    if da["optimizer"] == "sgd":
        opt = optim.build("sgd", groups, lr=da["lr"], momentum=da["momentum"], weight_decay=da["weight_decay"])
    else:
        opt = optim.build("adam", groups, lr=da["lr"], weight_decay=da["weight_decay"])
    share((model,), (opt,))
    steps = da["steps"]

    def restore(st: dict) -> None:
        model.load_state_dict(st["model"]); opt.load_state_dict(st["opt"])
        model.set_rng_state(st.get("method_rng", {}))  # older checkpoints: none kept

    loop = TrainLoop("train_da", steps=steps, log_every=da["log_every"], gen=gen, device=device, ckpt_dir=ckpt_dir,
                     checkpoint_every=da["checkpoint_every"], settings={
                         "setting": setting, "options": options, "seed": seed, "compute": c.record(),
                         "da": {k: v for k, v in da.items() if k not in ("eval_every", "log_every", "checkpoint_every")},
                         "n": [len(xs_all), 0 if xt_all is None else len(xt_all)]},
                     state=lambda: {"model": model.state_dict(), "opt": opt.state_dict(),
                                    "method_rng": model.rng_state()}, restore=restore,
                     tracker=tracker, metric_prefix=f"seed{seed}/", progress=progress, desc=f"train_da {setting}",
                     postfix={"loss": "loss"}, timed_curve=True)
    if loop.ck:
        loop.ck.keep_finished = keep_finished

    def score(done: int) -> dict:
        acc = lambda d: float((predict_labels(model, d["x_test"], device, head="classify") == d["y_test"]).float().mean())  # noqa: E731,E501
        return {"target_acc": acc(tgt), "source_acc": acc(src)}

    def step_fn(step: int):
        p = step / max(1, steps - 1)
        scale = annealed_lr(1.0, p, da["anneal_alpha"], da["anneal_beta"]) if da["lr_anneal"] else 1.0
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * scale
        model.train()
        idx = s_stream.indices(step)
        xs = c.images(color_jitter(to_float_images(xs_all[idx]), da["color_jitter"], gen))
        ys = ys_all[idx]
        xt = None
        if uses_target:
            xt = c.images(color_jitter(to_float_images(xt_all[t_stream.indices(step)]), da["color_jitter"], gen))
        with c.autocast():
            loss, logs = model.training_step(xs, ys, xt, p)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.after_optimizer_step()
        return loss, da["lr"] * scale, logs

    def row_fn(out) -> dict:
        loss, lr, logs = out
        return {"loss": float(loss.detach()), "lr": lr, **{k: float(v) for k, v in logs.items()}}

    history = loop.run(step_fn, row_fn, curve_fn=score, curve_every=da.get("eval_every") or 0, log_curve=True)
    train_s, (rows, curve_wall_s) = loop.wall(), split_curve(loop.curve)
    save_atomic({"method": method_name, "options": options, "setting": setting, "seed": seed,
                 "model": model.state_dict(), "curve": rows, "compute": c.record()}, out_model)
    if out_timing is not None and distributed.is_main():
        write_timing(out_timing, Path(out_model).name, train_seconds=train_s, curve_wall_s=curve_wall_s)
    loop.finish()
    return history


def load_da_model(path: Path, device: torch.device):
    from genda.da.methods import build_method

    ck = load_weights(path, map_location=device)
    model = build_method(ck["method"], n_classes=10, **ck["options"]).to(device)
    model.load_state_dict(ck["model"])
    model.eval()
    return model




@torch.no_grad()
def embed(model, x_uint8: torch.Tensor, device: torch.device, batch: int = 1000) -> torch.Tensor:
    model.eval()
    return torch.cat([model.embed(to_float_images(x_uint8[i:i + batch].to(device))).float().cpu()
                      for i in range(0, len(x_uint8), batch)])
