"""Evaluation of the conditional generators' samples and training curves (stage ``evaluate_cond``).

* :func:`evaluate_samples`: accuracy of the pipeline's digit classifier on the generated digits (label from the
  course file name ``{digit}_{nnn}.png``), FID / KID against the real test split and the real-vs-real floor
  (reference features cached by the ``fid_reference`` stage, :mod:`genda.metrics.fid_reference`), the digit FID
  in the classifier's own feature space; faces: FID / IS / KID, face-detection rate, and for attr_acgan and
  tag_cdcgan how often attribute classifiers trained on the real faces recognise the requested attribute / tags
  (:func:`score_groups`).
* :func:`write_curve`: the digit generators' training curve (the ``curve`` samples kept in the model file by
  :func:`genda.cond.train.train_cond`) scored by the same classifier.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from genda.runtime.checkpoint import load_weights
from genda.data.face_attrs import load_face_attributes
from genda.data.store import digits_path, faces_path, load_prepared
from genda.errors import ConfigError, DataError

__all__ = ["parse_label", "evaluate_samples", "CURVE_COLUMNS", "write_curve"]


CURVE_COLUMNS = ["setting", "seed", "step", "accuracy"]  # + wall_s when write_curve is given the timing file


def write_curve(model_path: Path, name: str, out_csv: Path, *, root: Path = Path("."),
                device: torch.device | None = None, timing: Path | None = None):
    """The training curve of generator ``name``: each ``curve`` point of ``model_path`` (written by
    :func:`train_cond`) scored by the pipeline's digit classifier ``models/classifier/<domain>.pt`` ->
    ``out_csv`` with :data:`CURVE_COLUMNS` (only the header for a face method or a model trained without a
    curve), plus each point's training wall time when ``timing`` (the training's timing file,
    :mod:`genda.train.timing`) is given. The pipeline's stage leaves it out, so its output depends on the
    model file alone; the report joins the wall times. Returns the DataFrame."""
    import pandas as pd

    from genda.metrics.digit_classifier import load_classifier
    from genda.data.tensors import predict_labels
    from genda.runtime.device import get_device

    ck = load_weights(model_path)
    rows = []
    if ck.get("curve"):
        device = device or get_device()
        meta = ck["meta"]
        clf = load_classifier(root / "models" / "classifier" / f"{meta['domain']}.pt", device)
        for r in ck["curve"]:
            labels = torch.arange(meta["n_classes"]).repeat(len(r["images"]) // meta["n_classes"])
            acc = float((predict_labels(clf, r["images"], device, batch=500) == labels).float().mean())
            rows.append({"setting": name, "seed": ck["seed"], "step": r["step"], "accuracy": acc})
    df = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    if timing is not None:
        from genda.train.timing import join_wall_s

        df = join_wall_s(df, lambda setting, seed: (timing, Path(model_path).name))
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_csv, index=False, float_format="%.6g")
    return df


_LABEL = re.compile(r"^(\d+)_\d+$")


def score_groups(gen: torch.Tensor, requested: torch.Tensor, faces: dict, table: dict, groups: dict, cfg: dict, *,
                 seed: int, device, where: str) -> dict:
    """How often the requested attribute value is recognised in the generated faces, per tag group.

    For each group (one attribute: off / on; several: which one is on, faces with none or several on left out,
    :func:`genda.data.face_attrs.tag_groups`) a classifier is trained on the real training faces and scores ``gen``
    (uint8 [N,3,S,S]) against ``requested`` (long [N, G], column g = group g's requested value). ``cfg`` is the
    ``classifier`` params section: the digit classifier's recipe with ``attr_steps`` steps and, where set,
    ``attr_width``, ``attr_batch_size``, ``attr_color_jitter``, every face (real and generated) resized (antialiased)
    to ``attr_image_size`` (unset: the faces' own size). Returns
    ``{"tag_accuracy": lowest group accuracy, "tag_groups": {group: {"accuracy", "per_class", "classifier_real_acc"
    (its accuracy on the real test faces of that group)}}, "attr_classifier": the settings it was trained with}``."""
    from genda.data.face_attrs import tag_groups
    from genda.data.imageio import resize_uint8
    from genda.data.tensors import predict_labels
    from genda.metrics.digit_classifier import accuracy_report, train_classifier

    names = table["attr_names"]
    tr = tag_groups(table["attrs_train"], names, groups, where=where)
    te = tag_groups(table["attrs_test"], names, groups, where=where)
    own = {k: cfg.get(f"attr_{k}") for k in ("width", "batch_size", "color_jitter")}
    c = {**cfg, **{k: v for k, v in own.items() if v is not None}, "steps": cfg["attr_steps"],
         "checkpoint_every": 10 ** 9}
    a = {"steps": c["steps"], "image_size": cfg.get("attr_image_size") or gen.shape[-1],
         **{k: c[k] for k in own}}
    side = lambda x: resize_uint8(x, a["image_size"])  # noqa: E731
    gen, x_train, x_test = side(gen), side(faces["x_train"]), side(faces["x_test"])
    per = {}
    for g, (group, dim) in enumerate(zip(tr["names"], tr["dims"])):
        keep = tr["keep"] if dim > 2 else torch.ones(len(tr["keep"]), dtype=torch.bool)
        clf, _ = train_classifier(c, x_train[keep], tr["tags"][keep, g], n_classes=dim, seed=seed,
                                  device=device, ckpt_dir=None, progress=False, tag=f"attr_classifier_{group}")
        rep = accuracy_report(predict_labels(clf, gen, device, batch=500), requested[:, g], dim)
        kt = te["keep"] if dim > 2 else torch.ones(len(te["keep"]), dtype=torch.bool)
        real = (accuracy_report(predict_labels(clf, x_test[kt], device, batch=500), te["tags"][kt, g], dim)
                ["accuracy"] if int(kt.sum()) else None)
        per[group] = {"accuracy": rep["accuracy"], "per_class": rep["per_class"], "classifier_real_acc": real,
                      "values": tr["values"][g]}
    return {"tag_accuracy": min(v["accuracy"] for v in per.values()), "tag_groups": per, "attr_classifier": dict(a)}


def face_rate_by_tag(detected: torch.Tensor, requested: torch.Tensor, groups: dict) -> dict:
    """The face rate of the generated faces per requested tag value: ``{group: {value name: rate or None}}``.

    ``detected``: bool [N] (a face found in image i); ``requested``: long [N, G]; ``groups``: :func:`score_groups`'s
    ``tag_groups`` (in column order, each with its ``values``). None where no face requested that value. A rare
    value the generator has learnt little of (e.g. CelebA's gray hair, 7 % of the tagged training faces) shows here
    while the overall face rate averages it away."""
    out = {}
    for g, (group, info) in enumerate(groups.items()):
        col = requested[:, g]
        out[group] = {v: (float(detected[col == i].float().mean()) if bool((col == i).any()) else None)
                      for i, v in enumerate(info["values"])}
    return out


def parse_label(stem: str, folder: Path, n_classes: int) -> int:
    """Class of a course-format file name ``{label}_{nnn}``; DataError naming the file otherwise."""
    m = _LABEL.match(stem)
    if not m or int(m.group(1)) >= n_classes:
        raise DataError(f"{Path(folder) / (stem + '.png')}: file name must be <label>_<number>.png with a label "
                        f"in 0..{n_classes - 1} (e.g. 3_042.png)")
    return int(m.group(1))


def evaluate_samples(sample_dir: Path, ev: dict, classifier_cfg: dict, *, root: Path = Path("."),
                     seed: int = 0, device: torch.device | None = None, reference_dir: Path | None = None) -> dict:
    """Metrics of the samples in ``sample_dir`` (written by :func:`write_samples`).

    * digits: accuracy of ``models/classifier/<domain>.pt`` on the PNGs (label from the file name) and
      per class, with the classifier's real test accuracy (the ceiling) from ``metrics/classifier.json``;
      FID / KID against the real test split of the domain, and the real-vs-real floor (as many real
      training digits against the same test split); the same FID in the classifier's own feature space
      (``digit_fid``, ``digit_fid_real_floor``: :mod:`genda.metrics.digit_fid`).
    * faces: FID / IS / KID against the real test faces (``ev["fid_reference"]``), its real-vs-real floor,
      the face-detection rate; attr_acgan also gets the accuracy of an attribute classifier trained here on
      the real faces (``classifier_cfg["attr_*"]``; 0 steps skip it), per class and its real test accuracy.

    ``ev`` is the ``evaluate`` params section; ``reference_dir``: the ``fid_reference`` stage's cached real
    features (``faces.pt``, ``digits.pt``: :mod:`genda.metrics.fid_reference`), used when they fit."""
    from genda.runtime.paths import resolve_path
    from genda.data.pngs import read_pngs
    from genda.metrics.digit_classifier import accuracy_report, load_classifier, train_classifier
    from genda.data.tensors import predict_labels
    from genda.metrics.digit_fid import digit_fid_with_floor
    from genda.metrics.fid_reference import load_reference
    from genda.metrics.fidelity import choose_extractor, fidelity_with_floor
    from genda.runtime.device import get_device

    device = device or get_device()
    sample_dir = Path(sample_dir)
    meta_path = sample_dir / "meta.json"
    if not meta_path.exists():
        raise DataError(f"{meta_path} not found; run the sample_cond stage first")
    info = json.loads(meta_path.read_text())
    folder = sample_dir / "images"
    gen, stems = read_pngs(folder)
    out: dict = {"method": info["method"], "n_images": len(gen)}
    weights = str(resolve_path(ev["inception_weights"], root)) if ev["inception_weights"] else None
    choice = choose_extractor(weights, allow_fallback=ev["allow_fallback_extractor"])
    fid_kw = dict(extractor=choice, batch_size=ev["batch_size"], device=str(device))

    def cached(kind: str, data: str):
        """The fid_reference stage's (reference, held-out) features of ``kind`` if they fit these samples."""
        if reference_dir is None:
            return None
        return load_reference(Path(reference_dir) / f"{kind}.pt", choice, len(gen), data=data)
    if info["kind"] == "digits":
        domain = info["domain"]
        labels = torch.tensor([parse_label(s, folder, 10) for s in stems])
        clf_path = root / "models" / "classifier" / f"{domain}.pt"
        if not clf_path.exists():
            raise ConfigError(f"no digit classifier for domain '{domain}': {clf_path} is missing; set "
                              f"classifier.domain: {domain} and run the train_classifier stage")
        clf = load_classifier(clf_path, device)
        rep = accuracy_report(predict_labels(clf, gen, device, batch=500), labels, 10)
        out.update(accuracy=rep["accuracy"], per_class_accuracy=rep["per_class"], domain=domain)
        real = root / "metrics" / "classifier.json"
        if real.exists():
            r = json.loads(real.read_text())
            if r.get("domain") == domain:
                out["classifier_real_acc"] = r.get("test_acc")
        digits = load_prepared(digits_path(domain, root), "digits")
        ref, held_out = digits["x_test"], digits["x_train"]
        feats = cached("digits", f"digits:{domain}") or (ref, held_out)
        m = fidelity_with_floor(gen, *feats, isc=False,
                                kid_subset_size=max(2, min(ev["kid_subset_size"], len(gen), len(ref))), **fid_kw)
        m.update(digit_fid_with_floor(clf, gen, ref, held_out, device))
    else:
        from genda.metrics.facedetect import detect_faces, detector_name
        from genda.metrics.gan_eval import face_reference

        faces = load_prepared(faces_path(root), "faces")
        ref, held_out = face_reference(faces, ev["fid_reference"])
        feats = cached("faces", f"faces:{ev['fid_reference']}") or (ref, held_out)
        m = fidelity_with_floor(gen, *feats,
                                kid_subset_size=max(2, min(ev["kid_subset_size"], len(gen), len(ref))), **fid_kw)
        detected = torch.tensor([c >= 1 for c in detect_faces(gen)])  # per image: also the rate per requested tag
        m.update(face_rate=float(detected.float().mean()), n=len(detected), detector=detector_name())
        if info["method"] == "attr_acgan":  # do the off/on pairs keep the identity? (genda.metrics.pair_identity)
            from genda.metrics.fidelity import extract_features, metric_layers
            from genda.metrics.pair_identity import pair_identity

            layer = metric_layers(choice, isc=False, kid=False)["fid"]
            feats = lambda x: extract_features(x, choice, [layer], batch_size=ev["batch_size"],  # noqa: E731
                                               device=str(device)).features[layer]
            out.update(pair_identity(gen, stems, feats, f"{choice.name} ({choice.weights}), layer {layer}"))
        if info["method"] in ("attr_acgan", "tag_cdcgan") and classifier_cfg["attr_steps"] > 0:
            table = load_face_attributes(root, faces=faces)
            if table["attrs_train"] is None:
                raise DataError(f"{faces_path(root)}: the faces have no attribute table to score {info['method']}'s "
                                f"samples with (data.face_attrs)")
            if info["method"] == "attr_acgan":
                groups = {info["attribute"]: [info["attribute"]]}
                requested = torch.tensor([[parse_label(s, folder, 2)] for s in stems])
            else:
                groups = info.get("tag_groups") or {n: [n] for n in info["tag_names"]}
                tag_file = json.loads((sample_dir / "tags.json").read_text())
                missing = [s for s in stems if s not in tag_file]
                if missing:
                    raise DataError(f"{sample_dir / 'tags.json'}: no tags for {missing[:3]}")
                requested = torch.tensor([tag_file[s] for s in stems])
            out.update(score_groups(gen, requested, faces, table, groups, classifier_cfg, seed=seed, device=device,
                                    where=str(sample_dir / "meta.json")))
            out["face_rate_by_tag"] = face_rate_by_tag(detected, requested, out["tag_groups"])
            if info["method"] == "attr_acgan":
                g = out.pop("tag_groups")[info["attribute"]]
                out.update(attr_accuracy=g["accuracy"], attr_per_class_accuracy=g["per_class"],
                           attribute=info["attribute"], attr_classifier_real_acc=g["classifier_real_acc"])
                out.pop("tag_accuracy")
        out["fid_reference"] = ev["fid_reference"]
    out.update(m)
    return out
