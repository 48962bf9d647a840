"""Conditional generation in the pipeline: data and one trainer for every method (sampling: :mod:`genda.cond.sample`,
evaluation: :mod:`genda.metrics.cond_eval`).

``cond_gens.<name>`` picks a method (:mod:`genda.cond.methods`) and the data it trains on::

    acgan, ddpm   data/prepared/digits/<cond.domain>.pt   x [N,3,28,28], cond = digit label [N] in 0..9
    attr_acgan    data/prepared/faces.pt                 x [N,3,64,64], cond = 1[attrs[:, a] > 0.5] [N] in {0,1}
    tag_cdcgan    data/prepared/faces.pt                 x [N,3,64,64], cond = tags [N, G]: one index per tag
                                                         group (``tag_groups``; default every binary attribute
                                                         a 2-way group), or a synthetic table

The attributes are :func:`genda.data.face_attrs.load_face_attributes`'s (``face_attrs.pt`` when the params
name a table, else ``faces.pt``'s own).

Training (:func:`train_cond`) follows :mod:`genda.gan.train`: the split stays on the device as uint8,
batch ``k`` of step ``s`` is ``BatchStream.indices(s * batches_per_step + k)``, every random draw comes
from one seeded CPU generator, and a fingerprinted :class:`~genda.runtime.checkpoint.Checkpointer` makes an
interrupted run resume bit-for-bit (CPU). Digit methods with ``curve_every > 0`` also sample
``curve_per_class`` digits per class every ``curve_every`` steps (the same noise each time, the method's
default sampler, their own generator: training is unchanged) and keep them, with the step, as the model
file's ``curve``; :func:`genda.metrics.cond_eval.write_curve` scores them. The training wall time at each
curve step (sampling excluded) goes to a timing file beside the metrics (:mod:`genda.train.timing`).

Sampling (:func:`genda.cond.sample.write_samples`) writes the course format under ``samples/cond/<name>/``:

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

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from genda.runtime import distributed
from genda.runtime.checkpoint import Checkpointer, load_weights, save_atomic  # noqa: F401  (tests patch Checkpointer here)
from genda.choices import DIGIT_METHODS
from genda.data.face_attrs import load_face_attributes, tag_groups
from genda.data.store import BatchStream, binary_attributes, digits_path, faces_path, load_prepared
from genda.errors import ConfigError, DataError
from genda.data.tensors import to_float_images, to_uint8_images
from genda.cond.methods import build_method
from genda.train.loop import TrainLoop, setup, share
from genda.train.timing import split_curve, write_timing

__all__ = ["CondData", "load_cond_data", "train_cond"]


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
    has no attribute table, or ``tag_balance`` names no tag group of tag_cdcgan; DataError (naming the file) when
    the prepared file is missing or malformed."""
    method = cfg["method"]
    if cfg.get("tag_balance") and method != "tag_cdcgan":
        raise ConfigError(f"params: 'cond_gens.{name}.tag_balance' is for tag_cdcgan only ({name} is {method})")
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
    table = load_face_attributes(root, faces=d)
    attrs, names = table["attrs_train"], table["attr_names"]
    has_table = attrs is not None
    if has_table:
        path = Path(table["source"])  # the file the attributes come from (faces.pt or face_attrs.pt)
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
                              f"has none; set data.face_attrs or tag_source: synthetic")
        t = tag_groups(attrs, names, cfg.get("tag_groups"), where=f"cond_gens.{name}.tag_groups")
        kept = int(t["keep"].sum())
        if kept < 2:
            raise DataError(f"{path}: only {kept} training faces have one value in every tag group "
                            f"{t['names']}; tag_cdcgan needs more")
        x, tags = x[t["keep"]], t["tags"][t["keep"]]
        _check_tag_balance(cfg, name, t["names"])
        return CondData(x, tags, {**base, "tag_dims": t["dims"], "tag_names": t["names"], "tag_values": t["values"],
                                  "tag_groups": cfg.get("tag_groups") or {n: [n] for n in names}, "tag_source": "faces", "n_left_out": len(t["keep"]) - kept})
    _check_tag_balance(cfg, name, group_names)
    return CondData(x, tags, {**base, "tag_dims": dims, "tag_names": group_names, "tag_source": cfg["tag_source"]})


def _check_tag_balance(cfg: dict, name: str, group_names: list[str]) -> None:
    if cfg.get("tag_balance") and cfg["tag_balance"] not in group_names:
        raise ConfigError(f"params: 'cond_gens.{name}.tag_balance' = {cfg['tag_balance']!r} is not a tag group; "
                          f"valid: {', '.join(group_names)}")


# --------------------------------------------------------------------------- training
class BalancedBatchStream:
    """Mini-batches in which every value of ``labels`` (long [N]) comes equally often in expectation (``tag_balance``):
    image i is drawn with probability ``1 / (K * count(labels[i]))``, K = the values present, with replacement; the
    batch at step s comes from ``Generator().manual_seed(seed * 1_000_003 + s)``, a pure function of (seed, step), so
    a resumed run draws what an uninterrupted one would (as :class:`~genda.data.store.BatchStream`). One process."""

    def __init__(self, labels: Tensor, batch_size: int, seed: int, device: torch.device | str = "cpu"):
        if distributed.world_size() > 1:
            raise ConfigError("tag_balance runs in one process only (unset it or GENDA_NPROC)")
        labels = labels.long().cpu()
        self.weights = 1.0 / torch.bincount(labels)[labels].double()
        self.batch_size, self.seed, self.device = min(batch_size, len(labels)), seed, device

    def indices(self, step: int) -> Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return torch.multinomial(self.weights, self.batch_size, replacement=True, generator=g).to(self.device)


def train_cond(cfg: dict, data: CondData, *, seed: int, device: torch.device, ckpt_dir: Path, out_model: Path,
               tracker=None, loss_csv: Path | None = None, progress: bool = True,
               compute: dict | None = None, out_timing: Path | None = None) -> list[dict]:
    """Train ``cfg["method"]`` on ``data`` for ``cfg["steps"]`` steps; save the sampling weights to ``out_model``.
    ``compute``: the params section of :mod:`genda.runtime.precision` (each forward pass and loss runs under its autocast); None: the
    effective one :func:`~genda.config.cond_config` put in ``cfg["compute"]`` (else fp32, NCHW).
    The model file holds the curve's samples without wall times (a rerun writes the same bytes); the curve's
    wall times and ``train_seconds`` go to ``out_timing`` (:mod:`genda.train.timing`).

    Returns the loss history (one row per ``log_every`` steps and at the end)."""
    gen, c = setup(seed, compute if compute is not None else cfg.get("compute"), device)
    method = build_method(cfg, data.meta, device, gen, train=True)
    method.autocast = c.autocast  # training_step runs forward passes and losses under it, updates outside
    for m in method._modules().values():
        if m is not None:
            c.module(m)
    share(method._modules().values(), method._optims().values())
    x, cond = data.x.to(device), data.cond.to(device)
    stream = BatchStream(len(x), cfg["batch_size"], seed, device)
    if cfg.get("tag_balance"):  # tag_cdcgan: one tag group's values drawn equally often (checked by load_cond_data)
        group = data.meta["tag_names"].index(cfg["tag_balance"])
        stream = BalancedBatchStream(data.cond[:, group], cfg["batch_size"], seed, device)
    k = method.batches_per_step
    loop = TrainLoop("train_cond", steps=cfg["steps"], log_every=cfg["log_every"], gen=gen, device=device,
                     ckpt_dir=ckpt_dir, checkpoint_every=cfg["checkpoint_every"], settings={
                         "cfg": cfg, "seed": seed, "n": len(x), "shape": list(x.shape[1:]), "meta": data.meta,
                         "compute": c.record()},
                     state=lambda: {"method": method.state_dict()},
                     restore=lambda st: method.load_state_dict(st["method"]), tracker=tracker, progress=progress,
                     desc=f"train_cond {cfg['method']}", timed_curve=True)
    curve_every = (cfg.get("curve_every") or 0) if data.meta["kind"] == "digits" else 0

    def snapshot(done: int) -> dict:
        labels = torch.arange(data.meta["n_classes"]).repeat(cfg.get("curve_per_class") or 10).to(device)
        with c.autocast():
            method.prepare_sampling(cond, seed)
            return {"images": to_uint8_images(method.sample(labels, torch.Generator().manual_seed(seed + 1))).cpu()}

    def step_fn(step: int) -> dict:
        batches = []
        for j in range(k):
            idx = stream.indices(step * k + j)
            batches.append((c.images(to_float_images(x[idx])), cond[idx]))
        return method.training_step(batches, step)

    def row_fn(logs: dict) -> dict:
        return {kk: float(v) for kk, v in logs.items()}  # the only host sync of a step

    history = loop.run(step_fn, row_fn, curve_fn=snapshot, curve_every=curve_every)
    with c.autocast():
        method.prepare_sampling(cond, seed)  # the EMA generator's BatchNorm statistics (no-op without)
    train_s, (rows, curve_wall_s) = loop.wall(), split_curve(loop.curve)  # wall times beside the model, so a rerun writes the same bytes
    save_atomic({"method": cfg["method"], "cfg": cfg, "meta": data.meta, "weights": method.export(),
                 "steps": cfg["steps"], "seed": seed, "curve": rows, "compute": c.record()}, out_model)
    if out_timing is not None and distributed.is_main():
        write_timing(out_timing, Path(out_model).name, train_seconds=train_s, curve_wall_s=curve_wall_s)
    loop.finish(loss_csv)
    return history










