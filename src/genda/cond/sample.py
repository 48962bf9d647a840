"""Sampling a trained conditional generator in the course format (:func:`write_samples`): digits as
``images/{digit}_{nnn}.png`` with a grid of one row per class (and the DDPM's reverse-process frames), attribute
pairs as ``images/{0,1}_{nnn}.png`` (same z, attribute off / on), tag combinations with ``tags.json``; plus
``meta.json``. The model file is the one :func:`genda.cond.train.train_cond` writes (:func:`load_cond_model`)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor

from genda.cond.methods import CondMethod, build_method
from genda.config import check_sampler
from genda.data.tensors import to_uint8_images
from genda.errors import ConfigError, DataError
from genda.runtime.checkpoint import load_weights

__all__ = ["load_cond_model", "write_samples"]


def load_cond_model(path: Path, device: torch.device) -> tuple[CondMethod, dict, dict]:
    """(method ready to sample, training cfg, data meta) from a model file written by :func:`train_cond`."""
    ck = load_weights(path, map_location=device)
    if not isinstance(ck, dict) or not {"method", "cfg", "meta", "weights"} <= set(ck):
        raise DataError(f"{path} is not a conditional-generator file written by train_cond")
    method = build_method(ck["cfg"], ck["meta"], device, train=False)
    method.load_export(ck["weights"])
    return method, ck["cfg"], ck["meta"]


def _u8(x: Tensor) -> Tensor:
    return to_uint8_images(x).cpu()


def _even(items: list, n: int) -> list:
    """``n`` evenly spaced items of ``items`` including the first and the last."""
    if n >= len(items):
        return list(items)
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def write_samples(method: CondMethod, meta: dict, sample: dict, out: Path, compute: dict | None = None) -> dict:
    """Generate and write the fixed-seed samples of one conditional generator to ``out`` (see module doc).

    ``sample`` is the ``cond_sample`` params section, ``compute`` the :mod:`genda.runtime.precision` one.  Digits are
    drawn with the labels interleaved (0, 1, ..., 9, 0, 1, ...), so every sampling batch holds every class
    evenly -- which matters with ``bn_mode: train`` (batch statistics) -- and written class by class.
    Returns the metadata also written to ``out/meta.json``."""
    from genda.runtime.precision import Compute

    with Compute(compute, method.device).autocast():
        return _write_samples(method, meta, sample, Path(out))


def _write_samples(method: CondMethod, meta: dict, sample: dict, out: Path) -> dict:
    from genda.data.pngs import save_grid, save_pngs

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("grid.png", "reverse.png", "tags.json", "meta.json"):
        (out / stale).unlink(missing_ok=True)
    g = torch.Generator().manual_seed(sample["seed"])
    bs, dev = sample["batch_size"], method.device
    info = {"method": meta["method"], "kind": meta["kind"], "seed": sample["seed"],
            **{k: meta[k] for k in ("domain", "attribute", "tag_dims", "tag_names", "tag_values", "tag_groups",
                                 "class_names") if k in meta}}
    if meta["method"] == "ddpm":
        check_sampler(sample, method.sched.T)
        info.update(sampler=sample["sampler"], guide_w=sample["guide_w"],
                    ddim_steps=sample["ddim_steps"] if sample["sampler"] == "ddim" else None)
    if meta["kind"] == "digits":
        n, K = sample["n_per_class"], meta["n_classes"]
        width = max(3, len(str(n)))
        labels = torch.arange(K).repeat(n)  # interleaved: each batch holds every class
        chunks, frames = [], None
        for i in range(0, len(labels), bs):
            lab = labels[i:i + bs].to(dev)
            if i == 0 and meta["method"] == "ddpm":
                steps = _even(method.visited_steps(sample), sample["reverse_frames"])
                x, inter = method.sample(lab, g, sample, keep_steps=steps, return_steps=True)
                frames = (steps, torch.stack([inter[t][0] for t in steps]))
            else:
                x = method.sample(lab, g, sample)
            chunks.append(_u8(x))
        images = torch.cat(chunks).view(n, K, *chunks[0].shape[1:]).transpose(0, 1).reshape(-1, *chunks[0].shape[1:])
        names = [f"{c}_{j + 1:0{width}d}" for c in range(K) for j in range(n)]
        save_pngs(images, out / "images", names)
        per = min(sample["grid_per_class"], n)
        grid = images.view(K, n, *images.shape[1:])[:, :per].reshape(-1, *images.shape[1:])
        save_grid(grid, out / "grid.png", nrow=per)
        if frames is not None:
            steps, xs = frames
            save_grid(_u8(xs.clamp(-1, 1)), out / "reverse.png", nrow=len(steps))
            info["reverse_steps"] = steps
        info.update(n_images=len(images), n_per_class=n, grid=[K, per])
    elif meta["method"] == "attr_acgan":
        n = sample["n_images"] // 2
        if n < 1:
            raise ConfigError("params: 'cond_sample.n_images' must be >= 2 for attr_acgan (pairs off/on)")
        offs, ons = [], []
        for i in range(0, n, bs):
            off, on = method.sample_pairs(min(bs, n - i), g)
            offs.append(_u8(off)); ons.append(_u8(on))
        off, on = torch.cat(offs), torch.cat(ons)
        width = max(3, len(str(n)))
        names = [f"0_{j + 1:0{width}d}" for j in range(n)] + [f"1_{j + 1:0{width}d}" for j in range(n)]
        save_pngs(torch.cat([off, on]), out / "images", names)
        per = min(sample["grid_per_class"], n)
        save_grid(torch.cat([off[:per], on[:per]]), out / "grid.png", nrow=per)
        info.update(n_images=2 * n, n_pairs=n, grid=[2, per])
    else:  # tag_cdcgan
        from genda.cond.models.cdcgan import tag_grid

        dims = meta["tag_dims"]
        n_combos = math.prod(dims)
        n = sample["n_images"]
        net = method.sampling_net()
        images, tags = tag_grid(net, method.cfg["z_dim"], dims, n_per_combo=math.ceil(n / n_combos), generator=g,
                                device=dev, batch_size=bs)
        images, tags = _u8(images[:n]), tags[:n].cpu()
        names = [f"{i:04d}" for i in range(len(images))]
        save_pngs(images, out / "images", names)
        (out / "tags.json").write_text(json.dumps({nm: t.tolist() for nm, t in zip(names, tags)}, indent=0) + "\n")
        rows = min(n_combos, 16)
        per = sample["grid_per_class"]
        gimg, gtags = tag_grid(net, method.cfg["z_dim"], dims, n_per_combo=per, generator=g, device=dev,
                               max_combos=rows, batch_size=bs)
        save_grid(_u8(gimg), out / "grid.png", nrow=per)
        info.update(n_images=len(images), n_combos=n_combos, grid=[rows, per],
                    grid_tags=gtags[::per].cpu().tolist())
    (out / "meta.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info
