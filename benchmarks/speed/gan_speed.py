"""Benchmark: genda's DCGAN training loop vs the PyTorch-examples DCGAN loop, on the CelebA JPGs (issue 10).

Both train the same networks (genda's DCGAN G and D, ``ngf = ndf = --width``, 64x64, batch ``--batch``, Adam
2e-4, beta1 0.5, BCE on logits, one D and one G step per iteration) for ``--steps`` iterations, timed after
``--warmup`` iterations:

* conventional (``examples/dcgan`` style): ``torchvision.datasets.ImageFolder`` over the extracted JPGs with
  ``Resize(64) + CenterCrop(64) + ToTensor + Normalize`` per sample, a ``DataLoader`` with ``--workers`` worker
  processes, NCHW fp32;
* genda: :func:`genda.gan.train.train_gan` (what ``stages/train_gan.py`` runs) on the faces decoded once into a
  uint8 tensor by :func:`genda.data.sources.load_faces` (the ``prepare`` stage's loader; its one-off time is
  reported apart), with ``compute`` = the default params' (channels_last; ``--precision`` overrides theirs).

The conventional loop runs first, in the fresh process with glibc's default allocator as a plain script has;
genda's trainer then sets its own (:mod:`genda.runtime.allocator`). ``--conventional-keep-heap`` gives the conventional
loop genda's allocator setting too. The result records both (``malloc``).

    python benchmarks/speed/gan_speed.py --faces ../shared/data/faces/celeba_10k.tar --out benchmarks/results/gan_speed_cpu.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def gan_cfg(width: int, batch: int, steps: int) -> dict:
    from genda.config import face_gan_config, load_params

    cfg = face_gan_config(load_params(ROOT / "params.yaml", check_paths=False), "dcgan")
    cfg.update(arch="dcgan", loss="bce", ngf=width, ndf=width, d_norm="batch", spectral_norm=False, batch_size=batch,
               steps=steps, lr_d=2e-4, lr_g=2e-4, beta1=0.5, beta2=0.999, label_smoothing=0.0, noisy_real=None,
               noisy_fake=None, d_steps=1, g_steps=1, d_skip_threshold=None, hflip=False, diffaugment="",
               ema_decay=None, lr_schedule="none", opt_d="adam", opt_g="adam", z_prior="normal",
               checkpoint_every=10 ** 9, log_every=10 ** 9)
    return cfg


def conventional(folder: Path, cfg: dict, steps: int, warmup: int, workers: int) -> float:
    """Seconds for ``steps`` iterations of the examples-style loop (after ``warmup``)."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from genda.gan.networks import build_discriminator, build_generator

    torch.manual_seed(0)
    tf = transforms.Compose([transforms.Resize(64), transforms.CenterCrop(64), transforms.ToTensor(),
                             transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    loader = DataLoader(datasets.ImageFolder(str(folder), transform=tf), batch_size=cfg["batch_size"], shuffle=True,
                        num_workers=workers, drop_last=True, persistent_workers=workers > 0)
    G, D = build_generator(cfg), build_discriminator(cfg)
    oG = torch.optim.Adam(G.parameters(), cfg["lr_g"], betas=(cfg["beta1"], cfg["beta2"]))
    oD = torch.optim.Adam(D.parameters(), cfg["lr_d"], betas=(cfg["beta1"], cfg["beta2"]))
    bce = torch.nn.BCEWithLogitsLoss()
    it, t0 = iter(loader), None
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        try:
            real, _ = next(it)
        except StopIteration:
            it = iter(loader)
            real, _ = next(it)
        b = real.shape[0]
        ones, zeros = torch.ones(b), torch.zeros(b)
        fake = G(torch.randn(b, cfg["z_dim"], 1, 1))
        ld = bce(D(real).view(-1), ones) + bce(D(fake.detach()).view(-1), zeros)
        D.zero_grad()
        ld.backward()
        oD.step()
        lg = bce(D(fake).view(-1), ones)
        G.zero_grad()
        lg.backward()
        oG.step()
    return time.perf_counter() - t0


def genda_loop(x: torch.Tensor, cfg: dict, steps: int, warmup: int, compute: dict, tmp: Path) -> float:
    """Seconds for ``steps`` iterations of genda's loop: a run of ``warmup + steps`` minus one of ``warmup``."""
    from genda.gan.train import train_gan

    def run(n: int, tag: str) -> float:
        t = time.perf_counter()
        train_gan({**cfg, "steps": n}, x, seed=0, device=torch.device("cpu"), ckpt_dir=tmp / f"ck_{tag}",
                  out_model=tmp / f"g_{tag}.pt", progress=False, compute=compute)
        return time.perf_counter() - t
    return run(warmup + steps, "long") - run(warmup, "short")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=Path, default=ROOT.parent / "shared/data/faces/celeba_10k.tar")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", type=Path)
    ap.add_argument("--precision", choices=("fp32", "bf16", "auto"),
                    help="genda's compute.precision (default: params.yaml's); the conventional loop stays fp32")
    ap.add_argument("--conventional-keep-heap", action="store_true",
                    help="the conventional loop also with genda.runtime.allocator.keep_heap (default: glibc's allocator as "
                         "a plain script has; genda's trainers keep their buffers in the heap)")
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from genda.config import load_params
    from genda.data.sources import load_faces
    from genda.runtime.records import environment

    if not a.faces.exists():
        sys.exit(f"gan_speed: {a.faces} not found (the CelebA tarball of ../shared/data)")
    compute = load_params(ROOT / "params.yaml", check_paths=False)["compute"]
    compute = {**compute, "precision": a.precision or compute["precision"]}
    cfg = gan_cfg(a.width, a.batch, a.steps)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        x = load_faces("npz", root=a.faces.parent.parent, size=64, crop=64, test_fraction=0.1).x_train
        prepare_s = time.perf_counter() - t
        with tarfile.open(a.faces) as tf:
            tf.extractall(tmp / "jpg", filter="data")  # ImageFolder: root/<class>/*.jpg (celebA/*.jpg)
        from genda.runtime.allocator import applied, keep_heap

        if a.conventional_keep_heap:
            keep_heap()
        conv_malloc = "keep_heap" if applied() else "default"
        c = conventional(tmp / "jpg", cfg, a.steps, a.warmup, a.workers)  # first: genda tunes the allocator
        g = genda_loop(x, cfg, a.steps, a.warmup, compute, tmp)
        from genda.runtime.precision import active

        compute["precision_used"] = active()
    res = {"what": __doc__.split("\n\n")[0], "width": a.width, "batch": a.batch, "steps": a.steps,
           "threads": a.threads, "workers_conventional": a.workers, "genda_compute": compute,
           "n_train_faces": len(x), "genda_prepare_once_s": round(prepare_s, 1),
           "genda_s_per_iter": round(g / a.steps, 3), "conventional_s_per_iter": round(c / a.steps, 3),
           "speedup": round(c / g, 2), "malloc": {"genda": "keep_heap" if applied() else "default",
                                                  "conventional": conv_malloc}, "command": "python benchmarks/speed/gan_speed.py " + " ".join(sys.argv[1:]),
           "env": environment(compute["precision_used"]), "note": a.note}
    print(json.dumps(res, indent=1))
    if a.out:
        a.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
