"""How a trained generator's BatchNorm layers behave while it samples (``bn_mode``).

* ``eval``: BatchNorm uses the running statistics accumulated during training (the usual inference mode).
* ``train``: BatchNorm normalises each sampled batch with that batch's own statistics, as the DCGAN and
  ACGAN reference implementations do (they never call ``G.eval()``); the generator saw exactly this
  during training, so short runs whose running averages lag behind the weights sample better this way.
  Outputs then depend on the sampling batch, so the batch size is part of the recipe. Dropout stays off
  and the running statistics are restored afterwards: sampling never changes the model.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn

from genda.choices import BN_MODES  # the params schema names the same choices
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@contextmanager
def sampling_mode(net: nn.Module, bn_mode: str = "eval") -> Iterator[nn.Module]:
    """Put ``net`` in sampling mode for the ``with`` block; its train/eval flags and BN buffers are restored."""
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode must be one of {', '.join(BN_MODES)}, got {bn_mode!r}")
    flags = {m: m.training for m in net.modules()}
    bns = [m for m in net.modules() if isinstance(m, _BN)]
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in bns] if bn_mode == "train" else []
    net.eval()
    if bn_mode == "train":
        for m in bns:
            m.train()
    try:
        yield net
    finally:
        for m, st in zip(bns, saved):
            m.load_state_dict(st)
        for m, t in flags.items():
            m.training = t
