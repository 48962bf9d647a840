"""Numerics and memory format of training and sampling: the ``compute`` params section.

* ``precision``: ``fp32`` | ``bf16`` | ``auto``. ``bf16`` runs forward passes and losses under
  :func:`torch.autocast` with ``torch.bfloat16`` (weights, optimiser state and the backward's accumulation stay
  fp32: mixed precision, no loss scaling needed for bf16). ``auto`` is ``bf16`` where bf16 matrix math was
  measured faster than fp32 (:func:`bf16_pays`) and ``fp32`` elsewhere. Measured one thread per process,
  ``benchmarks/speed/precision_speed.py``:

  - AVX2-only CPU: bf16 is emulated, a DANN step of batch 64+64 took 1.76 s against 0.21-0.25 s in fp32 on an
    AMD EPYC (``benchmarks/results/precision_avx2.json``) -> fp32.
  - Intel Xeon with AVX-512 BF16 but no AMX: native, yet 0.79-0.94x fp32's images/s for DANN, DCGAN, ACGAN and
    the DDPM FiLMUnet (``benchmarks/results/precision_speed_xeon_avx512bf16.json``) -> fp32.
  - AMD EPYC (Zen 5, family 26) with AVX-512 BF16: 1.36-1.75x fp32's images/s in NCHW, 1.88-2.52x with
    channels_last for DANN, DCGAN and ACGAN (the DDPM FiLMUnet 1.36x NCHW, 0.98x channels_last)
    (``benchmarks/results/precision_speed_amd_zen5_avx512bf16.json``) -> bf16; AMD's earlier AVX-512 BF16
    cores (Zen 4) are taken to behave alike (not measured here).
  - Intel with AMX-BF16 (matrix tiles) and CUDA GPUs with bf16: bf16 (their bf16 units are the point).

  Quality on real data: DANN MNIST-M -> USPS fp32 84.8 +- 1.3 %, bf16 84.7 +- 2.1 % (Zen 5, 6 seeds,
  ``benchmarks/results/ab_precision_dann_mnistm_usps_cpu.json``). The CelebA face GANs were worse in bf16 (Method B
  12.8 vs 4.8 FID) until the EMA generator's BatchNorm statistics were recomputed (2026-12-01: 2.7 vs 1.5) and the
  rest was traced to the autocast weight cache (2026-12-02, :func:`autocast`: the G step had been scored by the bf16
  copy of D from before D's update); since then, on the Xeon with AMX, Method A FID 3.79 +- 0.79
  fp32 vs 4.51 +- 1.03 bf16 and Method B 1.70 +- 0.09 vs 1.74 +- 0.10
  (``benchmarks/results/ab_precision_faces_celeba_cpu.json``). params.yaml keeps ``fp32`` at the top level (its
  short embedded face-GAN recipe collapsed more often in bf16: ``ab_precision_faces_embedded.json``) and trains the
  DA methods and the ACGAN with ``auto``.
* ``channels_last``: convolution weights and image batches in NHWC memory order, which oneDNN (CPU) and cuDNN
  (tensor cores) run faster; the numbers are the same up to summation order.

Both change the numerics, so they are params (DVC reruns what they touch) and the precision actually used is
recorded in every metrics file's ``env`` and MLflow's ``env.precision`` tag (:func:`active`).
"""
from __future__ import annotations

import contextlib
from typing import ContextManager

import torch
from torch import nn

from genda.choices import PRECISIONS  # the params schema names the same choices

_active = "fp32"


def bf16_pays(device: torch.device) -> bool:
    """Whether ``auto`` picks bf16 on ``device``: CUDA with bf16; a CPU with AMX-BF16; an AMD CPU with AVX-512
    BF16. Intel's AVX-512 BF16 without AMX measured no faster than fp32 (module docstring)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    from genda.runtime.device import cpu_info

    info = cpu_info()
    isa = info["cpu_isa"].split()
    return "amx_bf16" in isa or ("avx512_bf16" in isa and info.get("cpu_vendor") == "AuthenticAMD")


def resolve(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` or ``fp32`` for ``device``; remembered as :func:`active` for the metrics record."""
    global _active
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    _active = ("bf16" if bf16_pays(device) else "fp32") if precision == "auto" else precision
    return _active


def active() -> str:
    """The precision the last :func:`resolve` of this process chose (``fp32`` before any)."""
    return _active


def autocast(precision: str, device: torch.device) -> ContextManager:
    """The context for forward passes and losses: bf16 autocast, or nothing for fp32 (``precision`` resolved).

    One region per forward pass (+ its loss), closed before ``backward()`` and the optimiser step: autocast casts
    each fp32 weight to bf16 once per region and reuses that copy until the outermost region exits, so a region
    spanning ``opt.step()`` would keep serving the weights from before the step (the trainers of two networks,
    :mod:`genda.gan.train` and :mod:`genda.cond.methods`, did so for their G step until 2026-12-02)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Compute:
    """The resolved ``compute`` section for one stage: ``with c.autocast(): ...``, ``c.module(m)``, ``c.images(x)``.

    ``cfg`` is ``{"precision": ..., "channels_last": ...}`` (None: fp32, NCHW). On the CPU it also keeps the
    process's tensor buffers in the C heap between steps (:func:`genda.runtime.allocator.keep_heap`: same numbers, no
    page faults per step)."""

    def __init__(self, cfg: dict | None, device: torch.device) -> None:
        cfg = cfg or {}
        if torch.device(device).type == "cpu":
            from genda.runtime.allocator import keep_heap

            keep_heap()
        self.device = device
        self.precision = resolve(cfg.get("precision", "fp32"), device)
        self.channels_last = bool(cfg.get("channels_last", False))

    def autocast(self) -> ContextManager:
        return autocast(self.precision, self.device)

    def module(self, m: nn.Module) -> nn.Module:
        return m.to(memory_format=torch.channels_last) if self.channels_last else m

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def record(self) -> dict:
        return {"precision": self.precision, "channels_last": self.channels_last}
