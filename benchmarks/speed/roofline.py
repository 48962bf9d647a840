"""Benchmark: how far genda's DANN and DCGAN training steps are from this CPU's arithmetic peak, and so what
speed-up over the conventional loops (issue 10: DANN >= 3x, DCGAN >= 1.5x) is reachable at all.

In one process at ``--threads`` threads:

1. the machine's attainable peak in fp32 and bf16, best of ``--repeats``: a large square matmul (``--gemm-n``;
   MKL for fp32, oneDNN for bf16) and a large convolution (256 -> 256 channels, 3x3, 32x32, batch 32,
   channels_last; oneDNN) -- the larger of the two is the ceiling used below (MKL's fp32 GEMM does not reach
   the FMA peak on AMD CPUs, oneDNN's convolution does);
2. each network's training-step FLOPs, counted by :class:`torch.utils.flop_counter.FlopCounterMode` (convolutions
   and matmuls, forward and backward; elementwise work -- BatchNorm, pooling, activations, the optimiser -- is
   not counted, so the real work is larger): DANN at the issue's batch 128 + 128, DCGAN 64x64 with ngf = ndf = 64
   at batch 64 (one D step on real + fake, one G step), each step built as ``benchmarks/speed/precision_speed.py``
   builds it;
3. genda's bare step time for each (fp32 and bf16, channels_last), so the achieved GFLOP/s and its share of the
   peak;
4. the conventional loops' measured seconds per iteration -- the fastest run recorded in
   ``benchmarks/results/da_speed_amd_zen5.json`` (MNIST -> MNIST-M, batch 128) and ``gan_speed_amd_zen5.json``
   (fp32), same network and batch, so the bound below is the conservative one -- hence the best speed-up any
   loop could reach, ``conventional_s / (FLOPs / peak)``, and the share of the peak each goal would need::

    python benchmarks/speed/roofline.py --threads 2 --out benchmarks/results/roofline_amd_zen5.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def gemm_peak(dtype: torch.dtype, n: int, repeats: int) -> float:
    """Best GFLOP/s of ``n x n @ n x n`` in ``dtype``."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def conv_peak(dtype: torch.dtype, repeats: int) -> float:
    """Best GFLOP/s of a 256 -> 256, 3x3 convolution on ``[32, 256, 32, 32]`` (channels_last), forward only."""
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(dtype=dtype, memory_format=torch.channels_last)
    x = torch.randn(32, 256, 32, 32).to(dtype=dtype, memory_format=torch.channels_last)
    flops = 2 * 32 * 32 * 32 * 256 * 256 * 9
    with torch.no_grad():
        conv(x)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - t)
    return flops / best / 1e9


def step_flops_and_time(model: str, batch: int, precision: str, steps: int) -> tuple[float, float]:
    """(FLOPs of one training step, best seconds per step over 3 runs of ``steps``)."""
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(ROOT / "benchmarks/speed"))
    from precision_speed import _step_fn

    from genda.runtime.precision import Compute

    torch.manual_seed(0)
    compute = Compute({"precision": precision, "channels_last": True}, torch.device("cpu"))
    step, _ = _step_fn(model, batch, compute)
    for i in range(3):
        step(i)
    with FlopCounterMode(display=False) as fc:
        step(3)
    best = float("inf")
    for r in range(3):
        t = time.perf_counter()
        for i in range(steps):
            step(4 + r * steps + i)
        best = min(best, (time.perf_counter() - t) / steps)
    return float(fc.get_total_flops()), best


def conventional_s_per_iter() -> dict[str, dict]:
    """The fastest conventional-loop run recorded for each network (the conservative bound)."""
    da_runs = json.loads((RESULTS / "da_speed_amd_zen5.json").read_text())["runs"]
    da = {k: r["conventional_sec_per_epoch"] / r["steps"] for k, r in da_runs.items()
          if r.get("pair") == "mnist-mnistm" and r.get("batch") == 128 and r.get("conventional", "reference") == "reference"}
    gan = json.loads((RESULTS / "gan_speed_amd_zen5.json").read_text())
    gan_runs = {f"runs.{k}": r for k, r in gan["runs"].items()}
    gan_runs.update({f"reruns.{i}": r for i, r in enumerate(gan.get("reruns_2026_12_01_session5", {}).get("runs", []))})
    gan_fp32 = {k: r["conventional_s_per_iter"] for k, r in gan_runs.items() if "conventional_s_per_iter" in r}
    dk, gk = min(da, key=da.get), min(gan_fp32, key=gan_fp32.get)
    return {
        "dann": {"conventional_s": da[dk], "goal": 3.0,
                 "source": f"da_speed_amd_zen5.json runs.{dk}: the fastest of {len(da)} recorded runs of the "
                           "reference-style loop (fp32, 2 DataLoader workers), per MNIST epoch / 468 steps"},
        "dcgan64": {"conventional_s": gan_fp32[gk], "goal": 1.5,
                    "source": f"gan_speed_amd_zen5.json {gk}: the fastest of {len(gan_fp32)} recorded runs of the "
                              "PyTorch-examples loop (fp32, 2 workers)"},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gemm-n", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from genda.runtime.records import environment

    dts = (("fp32", torch.float32), ("bf16", torch.bfloat16))
    gemm = {p: round(gemm_peak(dt, a.gemm_n, a.repeats), 1) for p, dt in dts}
    conv = {p: round(conv_peak(dt, a.repeats), 1) for p, dt in dts}
    peak = {p: max(gemm[p], conv[p]) for p, _ in dts}
    print("GEMM GFLOP/s", gemm, "conv GFLOP/s", conv, flush=True)
    conventional = conventional_s_per_iter()
    rows = []
    for model, batch in (("dann", 128), ("dcgan64", 64)):
        for precision in ("fp32", "bf16"):
            flops, s = step_flops_and_time(model, batch, precision, a.steps)
            c = conventional[model]
            row = {"model": model, "batch": batch, "precision": precision, "channels_last": True,
                   "gflop_per_step": round(flops / 1e9, 2), "bare_step_s": round(s, 4),
                   "achieved_gflops": round(flops / s / 1e9, 1), "pct_of_peak": round(100 * flops / s / 1e9 / peak[precision], 1),
                   "conventional_s_per_iter": round(c["conventional_s"], 4),
                   "conventional_gflops_fp32": round(flops / c["conventional_s"] / 1e9, 1),
                   "floor_s_at_peak": round(flops / 1e9 / peak[precision], 4),
                   "max_speedup_at_peak": round(c["conventional_s"] / (flops / 1e9 / peak[precision]), 2),
                   "speedup_of_bare_step": round(c["conventional_s"] / s, 2),
                   "goal": c["goal"],
                   "goal_needs_gflops": round(flops / 1e9 / (c["conventional_s"] / c["goal"]), 1),
                   "goal_needs_pct_of_peak": round(100 * flops / 1e9 / (c["conventional_s"] / c["goal"]) / peak[precision], 1),
                   "conventional_source": c["source"]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    out = {"what": __doc__.split("\n\n")[0], "threads": a.threads, "gemm_n": a.gemm_n,
           "gemm_gflops": gemm, "conv_gflops": conv, "peak_gflops": peak, "note": a.note, "env": environment(), "rows": rows,
           "command": f"python benchmarks/speed/roofline.py --threads {a.threads} --gemm-n {a.gemm_n} --steps {a.steps}"}
    if a.out:
        a.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
