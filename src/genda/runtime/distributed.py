"""Data-parallel training over several processes (``torchrun``), chosen at run time like the device.

Not a param: the number of processes changes speed, not the recipe.  Two ways in::

    GENDA_NPROC=8 dvc repro                                    # every training stage runs on 8 processes
    torchrun --standalone --nproc_per_node 8 stages/train_gan.py dcgan   # one stage by hand

With ``GENDA_NPROC=N > 1`` a training stage re-executes itself under ``python -m torch.distributed.run``
(:func:`maybe_relaunch`), so DVC's stage commands stay the same.  Each process then calls
:func:`init_from_env` (backend ``nccl`` on CUDA, one GPU per local rank; ``gloo`` on CPU).

How a step is split (the recipe of a single-process run is kept):

* **data** — the global batch ``batch_size`` is cut into ``world_size`` equal shards: every rank draws the
  same global permutation (:class:`genda.data.store.BatchStream`) and takes its own slice, so one global
  step sees exactly the images a single-process step would;
* **noise** — each rank's random generator is seeded ``seed + 1_000_003·rank`` (:func:`rank_seed`), so ranks
  draw different z / jitter / timesteps; checkpoints keep every rank's generator state;
* **gradients** — every optimiser gets a step pre-hook (:func:`sync_optimizer`) that averages its
  parameters' gradients over the ranks in one flattened all-reduce before the update (the
  gradient averaging of ``DistributedDataParallel``, done per optimiser so that GAN D/G alternation,
  gradient penalties, spectral norm and multi-network methods need no forward-hook contract);
* **parameters** — identical at start (:func:`broadcast_modules` copies rank 0's weights and buffers),
  hence identical after every averaged update;
* **BatchNorm** — on CUDA, BN layers become ``SyncBatchNorm`` (statistics over the global batch, as in
  a single-process run); ``SyncBatchNorm`` does not run on CPU, so on CPU (gloo) BN normalises per shard;
* **outputs** — rank 0 alone writes checkpoints, models, metrics and the MLflow run.
"""
from __future__ import annotations

import os
import sys

_RANK_SEED_STRIDE = 1_000_003


def _dist():
    import torch.distributed as dist  # torch is imported lazily: stage scripts start MLflow first

    return dist if dist.is_available() and dist.is_initialized() else None


def world_size() -> int:
    d = _dist()
    return d.get_world_size() if d else 1


def rank() -> int:
    d = _dist()
    return d.get_rank() if d else 0


def is_main() -> bool:
    """Rank 0 (or not distributed), judged from torchrun's environment: the same answer before and after the
    process group exists (init_from_env only starts one under torchrun, which sets RANK)."""
    return os.environ.get("RANK", "0") == "0"


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def rank_seed(seed: int) -> int:
    """The seed of this rank's random generator (``seed`` itself on rank 0 / single process)."""
    return seed + _RANK_SEED_STRIDE * rank()


def requested_nproc() -> int:
    raw = os.environ.get("GENDA_NPROC", "1")
    try:
        n = int(raw)
    except ValueError:
        from genda.errors import ConfigError

        raise ConfigError(f"GENDA_NPROC={raw!r} must be a whole number of processes (e.g. 8)") from None
    return max(1, n)


def maybe_relaunch(argv: list[str] | None = None) -> None:
    """Re-execute this script under torchrun with ``$GENDA_NPROC`` processes, unless already a worker."""
    n = requested_nproc()
    if n <= 1 or "LOCAL_RANK" in os.environ:
        return
    argv = list(sys.argv if argv is None else argv)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", *argv]
    print(f"[distributed] {os.path.basename(argv[0])}: {n} processes via torchrun", flush=True)
    sys.stdout.flush(); sys.stderr.flush()
    os.execv(sys.executable, cmd)


def init_from_env() -> bool:
    """Join the process group that torchrun describes in the environment; False when not under torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "LOCAL_RANK" not in os.environ:
        return False
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return True
    want = os.environ.get("GENDA_DEVICE", "auto")
    cuda = torch.cuda.is_available() and not want.startswith("cpu")
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group("nccl" if cuda else "gloo")
    return True


def shutdown() -> None:
    d = _dist()
    if d:
        d.barrier()
        d.destroy_process_group()


def all_gather_object(obj) -> list:
    d = _dist()
    if not d:
        return [obj]
    out = [None] * d.get_world_size()
    d.all_gather_object(out, obj)
    return out


def mean_scalar(value) -> float:
    """The mean over ranks of a scalar (for decisions that must agree on every rank)."""
    import torch

    d = _dist()
    v = float(value)
    if not d:
        return v
    t = torch.tensor([v], dtype=torch.float64, device=_comm_device())
    d.all_reduce(t)
    return float(t.item()) / d.get_world_size()


def _comm_device():
    import torch

    d = _dist()
    return torch.device("cuda", torch.cuda.current_device()) if d and d.get_backend() == "nccl" else torch.device("cpu")


def broadcast_modules(*modules, sync_bn: bool = True) -> None:
    """Give every rank rank 0's parameters and buffers; on CUDA turn BatchNorm into SyncBatchNorm (in place:
    the same Parameter objects stay, so optimisers built before or after keep working)."""
    import torch

    d = _dist()
    if not d:
        return
    for m in modules:
        if m is None:
            continue
        if sync_bn and next(m.parameters(), torch.empty(0)).is_cuda:
            _convert_sync_bn(m)
        with torch.no_grad():
            for t in list(m.parameters()) + list(m.buffers()):
                d.broadcast(t.data, src=0)


def _convert_sync_bn(module) -> None:
    from torch import nn

    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, nn.SyncBatchNorm):
            setattr(module, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
        else:
            _convert_sync_bn(child)


def _average_gradients(optimizer, *_args, **_kwargs) -> None:
    import torch

    d = _dist()
    if not d:
        return
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    d.all_reduce(flat)
    flat.div_(d.get_world_size())
    i = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[i:i + n].view_as(g))
        i += n


def sync_optimizer(*optimizers) -> None:
    """Average gradients over the ranks before each ``step()`` of these optimisers (no-op single-process).

    Every rank must call ``step()`` on the same optimisers in the same order (true of genda's trainers:
    their control flow depends on params and step numbers, and the D-skip decision uses
    :func:`mean_scalar`)."""
    if not _dist():
        return
    for opt in optimizers:
        if opt is not None and not getattr(opt, "_genda_synced", False):
            opt.register_step_pre_hook(_average_gradients)
            opt._genda_synced = True
