"""Process-level helpers: device choice, thread count, seeding, the environment record, stable fingerprints."""
from __future__ import annotations

import hashlib
import json
import os
import random

import numpy as np
import torch

from genda.threads import thread_count


def cpu_info(path: str = "/proc/cpuinfo") -> dict:
    """CPU model, vendor (``GenuineIntel``, ``AuthenticAMD``, ...) and the instruction-set extensions that matter
    to torch's CPU kernels."""
    model, vendor, flags = "unknown", "unknown", set()
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("model name") and model == "unknown":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("vendor_id") and vendor == "unknown":
                    vendor = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        import platform

        model = platform.processor() or platform.machine()
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16") if f in flags]
    return {"cpu": model, "cpu_vendor": vendor, "cpu_isa": " ".join(isa) or "none", "cpu_cores": os.cpu_count() or 0,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


def environment(precision: str | None = None) -> dict:
    """What produced a number: versions, device, CPU ISA, threads, processes, precision.

    Written next to every metric (``env`` in ``metrics/**.json``) and as ``env.*`` tags of every MLflow run."""
    import platform

    from genda.allocator import applied
    from genda.distributed import world_size
    from genda.precision import active

    precision = precision or active()

    dev = get_device()
    env = {"torch": torch.__version__, "cuda": torch.version.cuda or "none",
           "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "threads": torch.get_num_threads(), "world_size": world_size(), "precision": precision,
           "python": platform.python_version(), "platform": platform.platform(terse=True),
           "malloc": "keep_heap" if applied() else "default"}
    env.update(cpu_info())
    return env


def get_device() -> torch.device:
    """`GENDA_DEVICE` (cpu | cuda | cuda:N | auto, default auto). Not a param: the device must not
    change results enough to invalidate DVC's cache, and it is not an experiment knob."""
    from genda.distributed import local_rank, world_size

    want = os.environ.get("GENDA_DEVICE", "auto")
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if want == "auto" else want)
    if dev.type == "cuda" and world_size() > 1:
        dev = torch.device("cuda", local_rank())  # torchrun: one GPU per local rank
    n = thread_count()
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator for the pipeline's own random draws.

    Random tensors are drawn on the CPU from this generator and then moved, so the same seed gives
    the same noise / batches on CPU and GPU."""
    from genda.distributed import rank_seed

    seed = rank_seed(seed)  # in a distributed run each rank draws its own noise (rank 0: `seed` itself)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def fingerprint(obj) -> str:
    """Short stable hash of a JSON-able object (used to tie checkpoints to the settings that made them)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def to_float_images(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [B,C,H,W] in 0..255 -> float in [-1, 1]."""
    return x_uint8.float().div_(127.5).sub_(1.0)


def to_uint8_images(x: torch.Tensor) -> torch.Tensor:
    """float [B,C,H,W] in [-1, 1] -> uint8 in 0..255 (clamped, rounded)."""
    return ((x.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
