"""The device a stage runs on (``GENDA_DEVICE``) and the CPU it finds (model, vendor, instruction sets)."""
from __future__ import annotations

import os

import torch

from genda.errors import ConfigError
from genda.runtime.threads import thread_count


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




def get_device() -> torch.device:
    """`GENDA_DEVICE` (cpu | cuda | cuda:N | auto, default auto). Not a param: the device must not
    change results enough to invalidate DVC's cache, and it is not an experiment knob."""
    from genda.runtime.distributed import local_rank, world_size

    want = os.environ.get("GENDA_DEVICE", "auto")
    if want == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(want)
        except RuntimeError:
            raise ConfigError(f"GENDA_DEVICE={want!r} is not a device; valid: auto, cpu, cuda, cuda:N") from None
        if dev.type not in ("cpu", "cuda"):
            raise ConfigError(f"GENDA_DEVICE={want!r}: genda runs on cpu or cuda; valid: auto, cpu, cuda, cuda:N")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"GENDA_DEVICE={want!r} but this machine has no CUDA device; use cpu or auto")
    if dev.type == "cuda" and world_size() > 1:
        dev = torch.device("cuda", local_rank())  # torchrun: one GPU per local rank
    n = thread_count()
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    return dev








