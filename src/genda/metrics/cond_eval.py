"""Evaluation of the conditional generators' samples and training curves (stage ``evaluate_cond``).

* :func:`evaluate_samples`: accuracy of the pipeline's digit classifier on the generated digits (label from the
  course file name ``{digit}_{nnn}.png``), FID / KID against the real test split and the real-vs-real floor
  (reference features cached by the ``fid_reference`` stage, :mod:`genda.metrics.fid_reference`), the digit FID
  in the classifier's own feature space; faces: FID / IS / KID, face-detection rate, and for attr_acgan the
  accuracy of an attribute classifier trained on the real faces.
* :func:`write_curve`: the digit generators' training curve (the ``curve`` samples kept in the model file by
  :func:`genda.cond.train.train_cond`) scored by the same classifier.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from genda.runtime.checkpoint import load_weights
from genda.data.store import binary_attributes, digits_path, faces_path, load_prepared
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
      the real faces (``classifier_cfg["attr_steps"]`` steps; 0 skips it), per class and its real test accuracy.

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
        from genda.metrics.facedetect import face_detection_rate
        from genda.metrics.gan_eval import face_reference

        faces = load_prepared(faces_path(root), "faces")
        ref, held_out = face_reference(faces, ev["fid_reference"])
        feats = cached("faces", f"faces:{ev['fid_reference']}") or (ref, held_out)
        m = fidelity_with_floor(gen, *feats,
                                kid_subset_size=max(2, min(ev["kid_subset_size"], len(gen), len(ref))), **fid_kw)
        m.update(face_detection_rate(gen))
        if info["method"] == "attr_acgan" and classifier_cfg["attr_steps"] > 0:
            attr = info["attribute"]
            names = list(faces.get("attr_names") or [])
            if attr not in names:
                raise DataError(f"{faces_path(root)}: attribute {attr!r} of the samples is not in attr_names {names}")
            a = names.index(attr)
            cfg = {**classifier_cfg, "steps": classifier_cfg["attr_steps"], "checkpoint_every": 10 ** 9}
            clf, _ = train_classifier(cfg, faces["x_train"], binary_attributes(faces["attrs_train"][:, a]), n_classes=2,
                                      seed=seed, device=device, ckpt_dir=None, progress=False, tag="attr_classifier")
            labels = torch.tensor([parse_label(s, folder, 2) for s in stems])
            rep = accuracy_report(predict_labels(clf, gen, device, batch=500), labels, 2)
            out.update(attr_accuracy=rep["accuracy"], attr_per_class_accuracy=rep["per_class"], attribute=attr)
            if faces.get("attrs_test") is not None and len(faces["x_test"]):
                real = accuracy_report(predict_labels(clf, faces["x_test"], device, batch=500),
                                       binary_attributes(faces["attrs_test"][:, a]), 2)
                out["attr_classifier_real_acc"] = real["accuracy"]
        out["fid_reference"] = ev["fid_reference"]
    out.update(m)
    return out
