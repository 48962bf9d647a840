"""Benchmark: training-step speed and peak memory of every network family under ``compute`` (issue 10, item 3).

For each model and each arm ``precision x memory format`` (fp32 / bf16 autocast, NCHW / channels_last), one fresh
process builds the network exactly as the trainer does and times its training step on synthetic batches
(speed does not depend on the pixels; genda's loops add nothing measurable over a bare step:
``benchmarks/results/loop_overhead_dann_cpu.json``):

* ``dann``: ``genda.da.methods`` DANN, batch B source + B target, SGD (``training_step`` = class + domain loss).
* ``dcgan64`` / ``dcgan64_ngf32``: DCGAN G and D on 64x64 faces (``genda.gan.train`` builders), one BCE D step
  and one G step, Adam, batch B.
* ``acgan``: the ``cond_gens.acgan`` method of params.yaml (``genda.cond.methods``), batch B.
* ``ddpm``: the ``cond_gens.ddpm`` method of params.yaml (FiLMUnet + v-prediction, EMA), batch B.

The process's peak resident memory (``ru_maxrss``) is recorded beside its images/s. One thread per process::

    python benchmarks/speed/precision_speed.py --batch 64 --steps 20 --out benchmarks/results/precision_speed_<cpu>.json

``--compile`` adds two arms, fp32 and bf16 with channels_last, whose networks go through :func:`torch.compile`
(``nn.Module.compile`` on each network: DANN's feature extractor, label predictor and domain head; DCGAN's G and
D; the conditional methods' modules); the first ``--warmup`` steps, which compile, are timed apart
(``compile_s``); ``--profile`` records where each arm's time goes (the costliest aten ops' share of the self
CPU time, torch.profiler)::

    python benchmarks/speed/precision_speed.py --models dann dcgan64_ngf32 --compile --profile \\
        --out benchmarks/results/compile_speed_<cpu>.json
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("dann", "dcgan64", "dcgan64_ngf32", "acgan", "ddpm")


def _step_fn(model: str, batch: int, compute, compiled: bool = False):
    """A closure running one training step of ``model`` (built as the trainer builds it) and its images/step;
    ``compiled``: each network through ``nn.Module.compile`` (torch.compile, default inductor backend)."""
    g = torch.Generator().manual_seed(0)

    def comp(*mods: torch.nn.Module) -> None:
        for mod in mods if compiled else ():
            mod.compile()
    if model == "dann":
        from genda.da.methods import build_method

        m = compute.module(build_method("dann", n_classes=10).train())
        comp(m.net.features, m.net.classifier, m.domain_adv.domain_discriminator)
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        xs, xt = (compute.images(x) for x in torch.rand(2, batch, 3, 28, 28, generator=g) * 2 - 1)
        ys = torch.randint(0, 10, (batch,), generator=g)

        def step(i: int) -> None:
            with compute.autocast():
                loss, _ = m.training_step(xs, ys, xt, 0.5)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step, 2 * batch
    if model.startswith("dcgan64"):
        from genda.config import load_params
        from genda.gan.networks import build_discriminator, build_generator

        cfg = {**load_params(ROOT / "params.yaml", check_paths=False)["gan"], "arch": "dcgan", "d_norm": "batch",
               "spectral_norm": False}
        cfg["ngf"] = cfg["ndf"] = 32 if model.endswith("ngf32") else 64
        G, D = compute.module(build_generator(cfg)), compute.module(build_discriminator(cfg))
        comp(G, D)
        oG = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
        oD = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
        real = compute.images(torch.rand(batch, 3, 64, 64, generator=g) * 2 - 1)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        ones, zeros = torch.ones(batch), torch.zeros(batch)

        def step(i: int) -> None:
            z = torch.randn(batch, cfg["z_dim"], 1, 1, generator=g)
            with compute.autocast():
                fake = G(z)
                ld = bce(D(real).float().view(-1), ones) + bce(D(fake.detach()).float().view(-1), zeros)
            oD.zero_grad(set_to_none=True)
            ld.backward()
            oD.step()
            with compute.autocast():
                lg = bce(D(fake).float().view(-1), ones)
            oG.zero_grad(set_to_none=True)
            lg.backward()
            oG.step()
        return step, batch
    from genda.config import load_params
    from genda.config import cond_config
    from genda.cond.methods import build_method

    cfg = {**cond_config(load_params(ROOT / "params.yaml", check_paths=False), model), "batch_size": batch}
    meta = {"kind": "digits", "n_classes": 10, "img_size": 28, "channels": 3, "method": model}
    method = build_method(cfg, meta, torch.device("cpu"), g, train=True)
    method.autocast = compute.autocast  # as genda.cond.train sets it: forward passes and losses only
    for mod in method._modules().values():
        if mod is not None:
            compute.module(mod)
            comp(mod)
    x = compute.images(torch.rand(batch * method.batches_per_step, 3, 28, 28, generator=g) * 2 - 1)
    c = torch.randint(0, 10, (len(x),), generator=g)
    batches = [(x[j * batch:(j + 1) * batch], c[j * batch:(j + 1) * batch]) for j in range(method.batches_per_step)]

    def step(i: int) -> None:
        method.training_step(batches, i)
    return step, batch * method.batches_per_step


def top_ops(step, steps: int, n: int = 8) -> dict[str, float]:
    """Share of the self CPU time (%) of the ``n`` costliest aten ops over ``steps`` more steps (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(steps):
            step(i)
    ev = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    ev.sort(key=lambda e: -e.self_cpu_time_total)
    return {e.key: round(100 * e.self_cpu_time_total / total, 1) for e in ev[:n]}


def measure(model: str, precision: str, channels_last: bool, batch: int, steps: int, warmup: int,
            compiled: bool = False, profile: bool = False) -> dict:
    """Time ``steps`` training steps after ``warmup`` (timed apart: ``compile_s``) in this process;
    ``profile``: then where the time goes (:func:`top_ops`)."""
    from genda.runtime.precision import Compute

    torch.set_num_threads(1)
    torch.manual_seed(0)
    compute = Compute({"precision": precision, "channels_last": channels_last}, torch.device("cpu"))
    step, n_img = _step_fn(model, batch, compute, compiled)
    t0 = time.perf_counter()
    for i in range(warmup):
        step(i)
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    dt = (time.perf_counter() - t0) / steps
    peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # before the profiler's own memory
    return {"model": model, "precision": compute.precision, "channels_last": channels_last, "compiled": compiled,
            "compile_s": round(warm_s, 1) if compiled else None, "ms_per_step": round(1000 * dt, 1),
            "img_per_s": round(n_img / dt, 1),
            "peak_rss_mib": peak, **({"top_ops_self_cpu_pct": top_ops(step, max(5, steps // 2))} if profile else {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--note", default="")
    ap.add_argument("--compile", action="store_true", help="also fp32 and bf16 channels_last through torch.compile")
    ap.add_argument("--profile", action="store_true", help="record each arm's costliest ops (torch.profiler)")
    ap.add_argument("--one", nargs=4, metavar=("MODEL", "PRECISION", "CHANNELS_LAST", "COMPILED"),
                    help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(measure(a.one[0], a.one[1], a.one[2] == "1", a.batch, a.steps, a.warmup, a.one[3] == "1",
                                 a.profile)))
        return
    from genda.runtime.records import environment

    torch.set_num_threads(1)  # as in each measuring process (recorded in env)
    rows = []
    for model in a.models:
        arms = [(p, cl, 0) for p in ("fp32", "bf16") for cl in (0, 1)]
        arms += [(p, 1, 1) for p in ("fp32", "bf16")] if a.compile else []
        for precision, cl, comp in arms:
            out = subprocess.run([sys.executable, __file__, "--one", model, precision, str(cl), str(comp), "--batch",
                                  str(a.batch), "--steps", str(a.steps), "--warmup", str(a.warmup)]
                                 + (["--profile"] if a.profile else []),
                                 check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    ratios = {}
    for model in a.models:
        r = {(x["precision"], x["channels_last"], x["compiled"]): x["img_per_s"] for x in rows if x["model"] == model}
        base = r[("fp32", False, False)]
        ratios[model] = {"bf16": round(r[("bf16", False, False)] / base, 2),
                         "channels_last": round(r[("fp32", True, False)] / base, 2),
                         "bf16_channels_last": round(r[("bf16", True, False)] / base, 2)}
        if a.compile:
            ratios[model].update({"channels_last_compiled": round(r[("fp32", True, True)] / base, 2),
                                  "bf16_channels_last_compiled": round(r[("bf16", True, True)] / base, 2)})
    res = {"what": __doc__.split("\n\n")[0], "batch": a.batch, "steps": a.steps, "threads": 1,
           "command": "python benchmarks/speed/precision_speed.py " + " ".join(sys.argv[1:]),
           "env": environment(), "rows": rows, "speedup_vs_fp32_nchw": ratios, "note": a.note}
    print(json.dumps(ratios, indent=1))
    if a.out:
        a.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
