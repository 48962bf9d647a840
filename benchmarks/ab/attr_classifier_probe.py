"""Probe: how well, and how fast, a face-attribute classifier of the pipeline's recipe learns a tag group.

A quick tool for choosing ``classifier.attr`` (not the record: the record is each ``evaluate_cond`` stage's
``attr_classifier_real_acc`` / ``tag_groups.<g>.classifier_real_acc``). It trains the classifier that
:func:`genda.metrics.cond_eval.score_groups` trains, on the prepared faces of the profile it runs in, and prints
its real test accuracy and wall time as one JSON line. Used for benchmarks/results/probe_attr_classifier_celeba_cpu.json:

    cd real && python ../benchmarks/ab/attr_classifier_probe.py --group smiling --size 32 --width 16 --steps 1500
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

GROUPS = {"smiling": {"smiling": ["Smiling"]},
          "hair": {"hair": ["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"]}}


def main() -> None:
    from genda.config import load_params
    from genda.data.face_attrs import load_face_attributes, tag_groups
    from genda.data.imageio import resize_uint8
    from genda.data.store import faces_path, load_prepared
    from genda.data.tensors import predict_labels
    from genda.metrics.digit_classifier import accuracy_report, train_classifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"), help="run from the profile's folder")
    ap.add_argument("--group", choices=sorted(GROUPS), default="smiling")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--color-jitter", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    root = a.params.resolve().parent
    faces = load_prepared(faces_path(root), "faces")
    table = load_face_attributes(root, faces=faces)
    tr = tag_groups(table["attrs_train"], table["attr_names"], GROUPS[a.group])
    te = tag_groups(table["attrs_test"], table["attr_names"], GROUPS[a.group])
    dim = tr["dims"][0]
    kt = tr["keep"] if dim > 2 else torch.ones(len(tr["keep"]), dtype=torch.bool)
    ke = te["keep"] if dim > 2 else torch.ones(len(te["keep"]), dtype=torch.bool)
    cfg = {**load_params(a.params)["classifier"], "steps": a.steps, "width": a.width, "batch_size": a.batch_size,
           "color_jitter": a.color_jitter, "checkpoint_every": 10 ** 9, "log_every": 10 ** 9}
    cpu = torch.device("cpu")
    t = time.time()
    clf, _ = train_classifier(cfg, resize_uint8(faces["x_train"][kt], a.size), tr["tags"][kt, 0], n_classes=dim,
                              seed=a.seed, device=cpu, ckpt_dir=None, progress=False)
    wall = time.time() - t
    rep = accuracy_report(predict_labels(clf, resize_uint8(faces["x_test"][ke], a.size), cpu, batch=500),
                          te["tags"][ke, 0], dim)
    print(json.dumps({"group": a.group, "size": a.size, "width": a.width, "batch_size": a.batch_size,
                      "steps": a.steps, "color_jitter": a.color_jitter, "seed": a.seed, "n_train": int(kt.sum()),
                      "n_test": int(ke.sum()), "wall_s": round(wall, 1), "s_per_step": round(wall / a.steps, 3),
                      "real_test_acc": round(rep["accuracy"], 4), "per_class": rep["per_class"]}))


if __name__ == "__main__":
    main()
