"""Keep large tensor buffers in the C heap between training steps (glibc ``mallopt``), instead of a fresh
``mmap`` per tensor per step.

glibc serves every allocation above ``M_MMAP_THRESHOLD`` (128 KiB at start, raised dynamically up to the largest
block freed so far) with its own ``mmap`` and returns it with ``munmap`` when freed. A CPU training step
allocates and frees the same activation and gradient buffers every step (a DANN step at batch 128 + 128: conv
outputs of 9-19 MB), so each step maps fresh pages and the kernel zero-fills every 4 KiB page on first touch --
page faults inside the convolutions, on the compute threads. :func:`keep_heap` sets

* ``M_MMAP_MAX`` = 0 and ``M_MMAP_THRESHOLD`` = 32 MiB (glibc's maximum on 64-bit): every block comes from the
  heap -- including the > 32 MiB scratch buffers of fp32 convolutions -- instead of a private mapping;
* ``M_TRIM_THRESHOLD`` = 1 GiB and ``M_TOP_PAD`` = 64 MiB: freed heap memory stays with the process for the
  next step instead of going back to the kernel at every ``free`` (glibc's default gives back whatever exceeds
  twice the last mmap threshold, so the same pages are faulted in again at the next step);

so after the first step the buffers are reused without page faults. It changes no number a step computes (only
where its memory comes from), so results are bit-identical; the process keeps up to ~1 GiB of freed heap instead
of returning it (peak RSS +0-8 %). Measured on the 2-core AMD EPYC Zen 5, bare training steps at 2 threads
(``python benchmarks/speed/allocator_speed.py``, ``benchmarks/results/allocator_speed_amd_zen5.json``): DANN at batch
128 + 128 1.21x in bf16 (8.2k -> 0.5k page faults per step) and 1.51x in fp32 (22.9k -> 0.8k), ACGAN ~1.2x,
DCGAN 64x64 1.03-1.05x, the DDPM's FiLMUnet 1.00x. Every stage calls it (:func:`genda.runtime.stage.run`), and so does
every :class:`genda.runtime.precision.Compute` on the CPU (the trainers' and samplers'); ``GENDA_MALLOC=default`` leaves
glibc's behaviour unchanged (for A/B runs). A no-op where the C library is not glibc (macOS, musl).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["keep_heap", "applied", "SETTINGS"]

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -2, -3, -4
SETTINGS = {"mmap_threshold": 32 << 20, "mmap_max": 0, "trim_threshold": 1 << 30, "top_pad": 64 << 20}
_applied: dict | None = None


def keep_heap() -> dict | None:
    """Apply :data:`SETTINGS` to this process's glibc allocator (once); returns them, or None when not applied
    (``GENDA_MALLOC=default``, not glibc, or ``mallopt`` refused)."""
    global _applied
    if _applied is not None:
        return _applied
    if os.environ.get("GENDA_MALLOC", "").strip().lower() == "default":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(mallopt(p, v) == 1 for p, v in ((_M_MMAP_THRESHOLD, SETTINGS["mmap_threshold"]),
                                             (_M_MMAP_MAX, SETTINGS["mmap_max"]),
                                             (_M_TRIM_THRESHOLD, SETTINGS["trim_threshold"]),
                                             (_M_TOP_PAD, SETTINGS["top_pad"])))
    _applied = dict(SETTINGS) if ok else None
    return _applied


def applied() -> bool:
    """Whether :func:`keep_heap` has tuned this process's allocator (recorded as ``env.malloc`` in metrics)."""
    return _applied is not None
