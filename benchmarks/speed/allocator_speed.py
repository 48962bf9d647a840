"""Benchmark: training-step time with glibc's default allocator against :func:`genda.runtime.allocator.keep_heap`.

Each arm is a fresh process (``GENDA_MALLOC=default`` or not) that builds one network's training step as
``benchmarks/speed/precision_speed.py`` does, runs ``--warmup`` steps, then times ``--steps`` steps and counts the
page faults (``ru_minflt``) and kernel time (``ru_stime``) those steps cost. Arms alternate, ``--repeats``
times, best time kept, so a machine that changes speed slows both alike::

    python benchmarks/speed/allocator_speed.py --threads 2 --out benchmarks/results/allocator_speed_<cpu>.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CASES = [("dann", 128, "bf16"), ("dann", 128, "fp32"), ("dcgan64", 64, "fp32"), ("dcgan64", 64, "bf16"),
         ("ddpm", 32, "fp32"), ("acgan", 32, "bf16")]


def child(model: str, batch: int, precision: str, steps: int, warmup: int, threads: int) -> dict:
    import torch

    from genda.runtime.allocator import keep_heap
    torch.set_num_threads(threads)
    tuned = keep_heap()
    sys.path.insert(0, str(ROOT / "benchmarks/speed"))
    from precision_speed import _step_fn

    from genda.runtime.precision import Compute

    torch.manual_seed(0)
    step, n_img = _step_fn(model, batch, Compute({"precision": precision, "channels_last": True}, torch.device("cpu")))
    for i in range(warmup):
        step(i)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    dt, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    return {"ms_per_step": round(1000 * dt / steps, 2), "page_faults_per_step": round((r1.ru_minflt - r0.ru_minflt) / steps),
            "sys_ms_per_step": round(1000 * (r1.ru_stime - r0.ru_stime) / steps, 2),
            "peak_rss_mib": round(r1.ru_maxrss / 1024), "tuned": tuned is not None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=None, help="subset of " + " ".join(m for m, _, _ in CASES))
    ap.add_argument("--child", nargs=3, metavar=("MODEL", "BATCH", "PRECISION"), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], int(a.child[1]), a.child[2], a.steps, a.warmup, a.threads)))
        return
    rows = []
    for model, batch, precision in CASES:
        if a.models and model not in a.models:
            continue
        runs = {"default": [], "keep_heap": []}
        for _ in range(a.repeats):
            for arm in runs:
                env = {**os.environ, "GENDA_MALLOC": "default" if arm == "default" else "keep_heap"}
                out = subprocess.run([sys.executable, __file__, "--child", model, str(batch), precision,
                                      "--steps", str(a.steps), "--warmup", str(a.warmup), "--threads", str(a.threads)],
                                     env=env, capture_output=True, text=True, check=True).stdout
                runs[arm].append(json.loads(out.strip().splitlines()[-1]))
        best = {arm: min(r, key=lambda x: x["ms_per_step"]) for arm, r in runs.items()}
        row = {"model": model, "batch": batch, "precision": precision, "channels_last": True,
               **{f"{arm}_{k}": v for arm, b in best.items() for k, v in b.items() if k != "tuned"},
               "all_ms_per_step": {arm: [x["ms_per_step"] for x in r] for arm, r in runs.items()},
               "speedup": round(best["default"]["ms_per_step"] / best["keep_heap"]["ms_per_step"], 3)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    if a.out:
        from genda.runtime.records import environment

        a.out.write_text(json.dumps({"what": __doc__.split("\n\n")[0], "threads": a.threads, "steps": a.steps,
                                     "repeats": a.repeats, "note": a.note, "env": environment(), "rows": rows,
                                     "command": f"python benchmarks/speed/allocator_speed.py --threads {a.threads} "
                                                f"--steps {a.steps} --repeats {a.repeats}"}, indent=1) + "\n")


if __name__ == "__main__":
    main()
