"""Conditional generation in the pipeline: data, one trainer for every method, sampling (evaluation:
:mod:`genda.metrics.cond_eval`).

``cond_gens.<name>`` picks a method (:mod:`genda.cond.methods`) and the data it trains on::

    acgan, ddpm   data/prepared/digits/<cond.domain>.pt   x [N,3,28,28], cond = digit label [N] in 0..9
    attr_acgan    data/prepared/faces.pt                 x [N,3,64,64], cond = 1[attrs[:, a] > 0.5] [N] in {0,1}
    tag_cdcgan    data/prepared/faces.pt                 x [N,3,64,64], cond = tags [N, G]: every binary
                                                         attribute is a 2-way group (or a synthetic table)

Training (:func:`train_cond`) follows :mod:`genda.gan.train`: the split stays on the device as uint8,
batch ``k`` of step ``s`` is ``BatchStream.indices(s * batches_per_step + k)``, every random draw comes
from one seeded CPU generator, and a fingerprinted :class:`~genda.runtime.checkpoint.Checkpointer` makes an
interrupted run resume bit-for-bit (CPU). Digit methods with ``curve_every > 0`` also sample
``curve_per_class`` digits per class every ``curve_every`` steps (the same noise each time, the method's
default sampler, their own generator: training is unchanged) and keep them, with the step, as the model
file's ``curve``; :func:`genda.metrics.cond_eval.write_curve` scores them. The training wall time at each
curve step (sampling excluded) goes to a timing file beside the metrics (:mod:`genda.train.timing`).

Sampling (:func:`write_samples`) writes the course format under ``samples/cond/<name>/``:

* digits: ``images/{digit}_{nnn}.png`` (``n_per_class`` per digit, nnn from 001), ``grid.png`` with one
  row per digit (``grid_per_class`` columns) and, for ddpm, ``reverse.png``: the first "0" at
  ``reverse_frames`` evenly spaced steps of its reverse process (x_T ... x_0);
* attr_acgan: ``images/{0|1}_{nnn}.png`` (0 = attribute off, 1 = on; the same nnn = the same z) and
  ``grid.png`` (top row off, bottom row on);
* tag_cdcgan: ``images/{nnnn}.png`` over all tag combinations, ``tags.json`` (file -> tags) and a
  ``grid.png`` with one row per tag combination;
* ``meta.json``: method, data, labels and sampler, read by :func:`genda.metrics.cond_eval.evaluate_samples`.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from genda.runtime import distributed
from genda.runtime.checkpoint import Checkpointer, load_weights, save_atomic
from genda.choices import DIGIT_METHODS
from genda.config import check_sampler
from genda.data.store import BatchStream, binary_attributes, digits_path, faces_path, load_prepared
from genda.errors import ConfigError, DataError
from genda.rng import fingerprint, seed_everything
from genda.data.tensors import to_float_images, to_uint8_images
from genda.cond.methods import CondMethod, build_method
from genda.train.timing import split_curve, write_timing

__all__ = ["CondData", "load_cond_data", "train_cond", "load_cond_model", "write_samples"]


# --------------------------------------------------------------------------- data
@dataclass
class CondData:
    """Training images (uint8 ``[N,3,S,S]``), their conditions (long ``[N]`` or ``[N,G]``) and ``meta``
    (kind, n_classes / tag_dims, img_size, channels, names, source file)."""

    x: Tensor
    cond: Tensor
    meta: dict = field(default_factory=dict)


def load_cond_data(cfg: dict, name: str, root: Path = Path("."), seed: int = 0) -> CondData:
    """The training set of conditional generator ``name`` with settings ``cfg`` (see the module docstring).

    Raises ConfigError when the configured attribute is not in the face set's ``attr_names`` or the face set
    has no attribute table; DataError (naming the file) when the prepared file is missing or malformed."""
    method = cfg["method"]
    if method in DIGIT_METHODS:
        path = digits_path(cfg["domain"], root)
        if not path.exists():
            raise DataError(f"{path} not found: {method} trains on the prepared '{cfg['domain']}' digits; add it to "
                            f"data.domains and run the prepare stage (or set cond.domain)")
        d = load_prepared(path, "digits")
        x, y = d["x_train"], d["y_train"].long()
        return CondData(x, y, {"kind": "digits", "method": method, "domain": cfg["domain"], "n_classes": 10,
                               "img_size": int(x.shape[-1]), "channels": int(x.shape[1]),
                               "class_names": [str(c) for c in range(10)], "source": str(path)})
    path = faces_path(root)
    if not path.exists():
        raise DataError(f"{path} not found: {method} trains on the prepared faces; set data.faces: true and run "
                        f"the prepare stage")
    d = load_prepared(path, "faces")
    x = d["x_train"]
    base = {"kind": "faces", "method": method, "img_size": int(x.shape[-1]), "channels": int(x.shape[1]),
            "source": str(path)}
    attrs, names = d.get("attrs_train"), list(d.get("attr_names") or [])
    has_table = attrs is not None and torch.is_tensor(attrs) and attrs.ndim == 2 and attrs.shape[1] > 0 and names
    if has_table and (len(attrs) != len(x) or attrs.shape[1] != len(names)):
        raise DataError(f"{path}: attrs_train is {tuple(attrs.shape)} but there are {len(x)} images and "
                        f"{len(names)} attr_names")
    if method == "attr_acgan":
        if not has_table:
            raise ConfigError(f"cond_gens.{name}: attr_acgan needs a face attribute table, but {path} has none "
                              f"(its source gives no attributes); use a face source with attributes "
                              f"(e.g. CelebA's list_attr_celeba) or another method")
        attr = cfg["attribute"]
        if attr not in names:
            raise ConfigError(f"params: 'cond_gens.{name}.attribute' (or 'cond.attribute') = {attr!r} is not an "
                              f"attribute of the prepared faces {path}; available: {', '.join(names)}")
        y = binary_attributes(attrs[:, names.index(attr)])
        counts = torch.bincount(y, minlength=2).tolist()
        if min(counts) == 0:
            raise DataError(f"{path}: attribute {attr!r} is {'never' if counts[1] == 0 else 'always'} on in "
                            f"attrs_train; attr_acgan needs both values")
        return CondData(x, y, {**base, "n_classes": 2, "attribute": attr, "class_names": [f"no {attr}", attr],
                               "class_counts": counts})
    # tag_cdcgan
    if base["img_size"] != 64:
        raise ConfigError(f"cond_gens.{name}: tag_cdcgan generates 64x64 images but the prepared faces are "
                          f"{base['img_size']}x{base['img_size']}; set data.face_size: 64")
    if cfg["tag_source"] == "synthetic":
        from genda.cond.models.cdcgan import synthetic_tag_table

        dims = [int(v) for v in cfg["synthetic_tag_dims"]]
        tags = synthetic_tag_table(len(x), dims, seed=seed)
        group_names = [f"group{g}" for g in range(len(dims))]
    else:
        if not has_table:
            raise ConfigError(f"cond_gens.{name}: tag_source 'faces' needs a face attribute table, but {path} "
                              f"has none; set tag_source: synthetic")
        tags, dims, group_names = binary_attributes(attrs), [2] * len(names), names
    return CondData(x, tags, {**base, "tag_dims": dims, "tag_names": group_names, "tag_source": cfg["tag_source"]})


# --------------------------------------------------------------------------- training
def train_cond(cfg: dict, data: CondData, *, seed: int, device: torch.device, ckpt_dir: Path, out_model: Path,
               tracker=None, loss_csv: Path | None = None, progress: bool = True,
               compute: dict | None = None, out_timing: Path | None = None) -> list[dict]:
    """Train ``cfg["method"]`` on ``data`` for ``cfg["steps"]`` steps; save the sampling weights to ``out_model``.
    ``compute``: the params section of :mod:`genda.runtime.precision` (each forward pass and loss runs under its autocast); None: the
    effective one :func:`~genda.config.cond.cond_config` put in ``cfg["compute"]`` (else fp32, NCHW).
    The model file holds the curve's samples without wall times (a rerun writes the same bytes); the curve's
    wall times and ``train_seconds`` go to ``out_timing`` (:mod:`genda.train.timing`).

    Returns the loss history (one row per ``log_every`` steps and at the end)."""
    from tqdm import tqdm

    from genda.gan.train import write_history

    gen = seed_everything(seed)
    from genda.runtime.precision import Compute

    c = Compute(compute if compute is not None else cfg.get("compute"), device)
    method = build_method(cfg, data.meta, device, gen, train=True)
    method.autocast = c.autocast  # training_step runs forward passes and losses under it, updates outside
    for m in method._modules().values():
        if m is not None:
            c.module(m)
    distributed.broadcast_modules(*method._modules().values())
    distributed.sync_optimizer(*[o for o in method._optims().values() if isinstance(o, torch.optim.Optimizer)])
    x, cond = data.x.to(device), data.cond.to(device)
    stream = BatchStream(len(x), cfg["batch_size"], seed, device)
    k = method.batches_per_step
    ck = Checkpointer(ckpt_dir, cfg["checkpoint_every"], fingerprint(
        {"cfg": cfg, "seed": seed, "n": len(x), "shape": list(x.shape[1:]), "meta": data.meta,
         "compute": c.record()}), total=cfg["steps"])
    start, history, curve, wall0, eval_s = 0, [], [], 0.0, 0.0
    resumed = ck.load(device)
    if resumed:
        start, st = resumed
        method.load_state_dict(st["method"])
        gen.set_state(st["gen"].cpu())  # the checkpoint is loaded onto `device`; generator states live on the CPU
        history = list(st["history"])
        curve, wall0 = list(st.get("curve", [])), float(st.get("wall_s", 0.0))
        print(f"[train_cond] resumed from step {start} ({ck.path})")
    curve_every = (cfg.get("curve_every") or 0) if data.meta["kind"] == "digits" else 0

    def wall() -> float:
        return wall0 + time.time() - t0 - eval_s

    def state() -> dict:
        return {"method": method.state_dict(), "gen": gen.get_state(), "history": history, "curve": curve,
                "wall_s": wall()}

    def snapshot(done: int) -> None:
        nonlocal eval_s
        te = time.time()
        row = {"step": done, "wall_s": round(wall(), 2)}
        labels = torch.arange(data.meta["n_classes"]).repeat(cfg.get("curve_per_class") or 10).to(device)
        with c.autocast():
            method.prepare_sampling(cond, seed)
            row["images"] = to_uint8_images(method.sample(labels, torch.Generator().manual_seed(seed + 1))).cpu()
        curve.append(row)
        eval_s += time.time() - te

    t0 = time.time()
    bar = tqdm(range(start, cfg["steps"]), initial=start, total=cfg["steps"], desc=f"train_cond {cfg['method']}",
               disable=not (progress and distributed.is_main()), mininterval=5)
    for step in bar:
        batches = []
        for j in range(k):
            idx = stream.indices(step * k + j)
            batches.append((c.images(to_float_images(x[idx])), cond[idx]))
        logs = method.training_step(batches, step)
        done = step + 1
        if done % cfg["log_every"] == 0 or done == cfg["steps"]:
            logs = {kk: float(v) for kk, v in logs.items()}  # the only host sync of a step
            row = {"step": done, **logs}
            history.append(row)
            bar.set_postfix({kk: f"{v:.3f}" for kk, v in logs.items() if kk.startswith("loss")})
            if tracker:
                tracker.log_metrics(logs, step=done)
        if curve_every and distributed.is_main() and (done % curve_every == 0 or done == cfg["steps"]):
            snapshot(done)
        if ck.due(done) and done < cfg["steps"]:
            ck.save(done, state())
    with c.autocast():
        method.prepare_sampling(cond, seed)  # the EMA generator's BatchNorm statistics (no-op without)
    train_s, (rows, curve_wall_s) = wall(), split_curve(curve)  # wall times beside the model, so a rerun writes the same bytes
    save_atomic({"method": cfg["method"], "cfg": cfg, "meta": data.meta, "weights": method.export(),
                 "steps": cfg["steps"], "seed": seed, "curve": rows, "compute": c.record()}, out_model)
    if out_timing is not None and distributed.is_main():
        write_timing(out_timing, Path(out_model).name, train_seconds=train_s, curve_wall_s=curve_wall_s)
    ck.save(cfg["steps"], state())
    if loss_csv:
        write_history(history, loss_csv)
    if tracker:
        tracker.log_metrics({"train_seconds": time.time() - t0}, step=cfg["steps"])
    return history


def load_cond_model(path: Path, device: torch.device) -> tuple[CondMethod, dict, dict]:
    """(method ready to sample, training cfg, data meta) from a model file written by :func:`train_cond`."""
    ck = load_weights(path, map_location=device)
    if not isinstance(ck, dict) or not {"method", "cfg", "meta", "weights"} <= set(ck):
        raise DataError(f"{path} is not a conditional-generator file written by train_cond")
    method = build_method(ck["cfg"], ck["meta"], device, train=False)
    method.load_export(ck["weights"])
    return method, ck["cfg"], ck["meta"]


# --------------------------------------------------------------------------- sampling
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
            **{k: meta[k] for k in ("domain", "attribute", "tag_dims", "tag_names", "class_names") if k in meta}}
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
