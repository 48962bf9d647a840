"""Benchmark: genda's DA training loop against a bare training step of the same network (issue 10, item 2).

* bare: ``method.training_step`` + backward + SGD step on batches already on the device as float tensors
  (no indexing, no uint8 -> float conversion, no jitter, no lr schedule, no logging): the compute floor.
* loop: :func:`genda.da.train.train_da` itself (uint8 splits on the device, batch indexing, colour jitter, lr
  annealing, the progress bar, loss logging every ``log_every`` steps; curve evaluation and checkpoints off).

Both run the same method, batch, thread count and number of steps, alternating ``--repeats`` times (so a
machine shared with other work slows both alike); the best time of each is kept. Synthetic uint8 digits (speed
does not depend on the pixels), so it needs no dataset:

    python benchmarks/speed/loop_overhead.py --method dann --batch 64 --steps 60 --threads 1 \\
        --out benchmarks/results/loop_overhead_cpu.json
    python benchmarks/speed/loop_overhead.py --method dann --threads 2 --precision bf16 --channels-last   # both in bf16 NHWC
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def bare(method_name: str, batch: int, steps: int, seed: int, compute: dict) -> float:
    from genda.da.methods import build_method
    from genda.runtime.precision import Compute

    torch.manual_seed(seed)
    c = Compute(compute, torch.device("cpu"))
    m = c.module(build_method(method_name, n_classes=10).train())
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    xs, xt = (c.images(x) for x in torch.rand(2, batch, 3, 28, 28, generator=g) * 2 - 1)
    ys = torch.randint(0, 10, (batch,), generator=g)
    for i in range(steps + 3):
        if i == 3:  # warm-up steps excluded, as in the loop's measurement below
            t0 = time.perf_counter()
        with c.autocast():
            loss, _ = m.training_step(xs, ys, xt if m.needs_target else None, i / steps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def loop(method_name: str, batch: int, steps: int, seed: int, compute: dict) -> float:
    from genda.da.train import train_da
    from genda.train.timing import read_timing

    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> dict:
        return {"x_train": torch.randint(0, 256, (n, 3, 28, 28), generator=g, dtype=torch.uint8),
                "y_train": torch.randint(0, 10, (n,), generator=g),
                "x_test": torch.zeros(10, 3, 28, 28, dtype=torch.uint8), "y_test": torch.zeros(10, dtype=torch.long)}

    src, tgt = split(4096), split(4096)
    da = {"batch_size": batch, "steps": steps + 3, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9,
          "weight_decay": 0.0, "lr_anneal": True, "anneal_alpha": 10.0, "anneal_beta": 0.75, "color_jitter": 0.3,
          "checkpoint_every": 10 ** 9, "log_every": 50, "eval_every": 0}
    with tempfile.TemporaryDirectory() as tmp:
        train_da(method_name, {}, da, src, tgt, seed=seed, device=torch.device("cpu"), ckpt_dir=Path(tmp) / "ck",
                 out_model=Path(tmp) / "m.pt", progress=True, compute=compute, out_timing=Path(tmp) / "timing.json")
        train_seconds = read_timing(Path(tmp) / "timing.json", "m.pt")["train_seconds"]
    # train_seconds covers all steps; scale to `steps` steps like the bare timing
    return train_seconds * steps / (steps + 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="dann")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"), help="compute.precision of both")
    ap.add_argument("--channels-last", action="store_true", help="compute.channels_last of both")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from genda.runtime.records import environment

    compute = {"precision": a.precision, "channels_last": a.channels_last}
    tb, tl = [], []
    for r in range(a.repeats):
        tb.append(bare(a.method, a.batch, a.steps, r, compute))
        tl.append(loop(a.method, a.batch, a.steps, r, compute))
        print(f"repeat {r}: bare {tb[-1] / a.steps * 1e3:.1f} ms/step, loop {tl[-1] / a.steps * 1e3:.1f} ms/step")
    b, lp = min(tb), min(tl)
    e = environment()
    res = {"method": a.method, "batch": f"{a.batch} + {a.batch}" if a.method != "source_only" else a.batch,
           "steps": a.steps, "threads": a.threads, "repeats": a.repeats,
           "bare_ms_per_step": round(b / a.steps * 1e3, 2), "loop_ms_per_step": round(lp / a.steps * 1e3, 2),
           "loop_throughput_vs_bare": round(b / lp, 3), "compute": compute,
           "bare_ms_each": [round(v / a.steps * 1e3, 2) for v in tb], "loop_ms_each": [round(v / a.steps * 1e3, 2) for v in tl],
           "loop_throughput_vs_bare_median": round(statistics.median(tb) / statistics.median(tl), 3),
           "command": "python benchmarks/speed/loop_overhead.py " + " ".join(
               f"--{k} {v}" for k, v in (("method", a.method), ("batch", a.batch), ("steps", a.steps),
                                          ("threads", a.threads), ("repeats", a.repeats),
                                          ("precision", a.precision))) + (" --channels-last" if a.channels_last else ""),
           "machine": f"{e['cpu_cores']}-core {e['cpu']} ({e['cpu_isa']}), torch {e['torch']}"}
    print(json.dumps(res, indent=1))
    if a.out:
        a.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
