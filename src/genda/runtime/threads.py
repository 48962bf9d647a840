"""The intra-op thread count of a stage, pinned before torch is imported (no torch import here)."""
from __future__ import annotations

import os

DEFAULT_THREADS = 2


def thread_count() -> int:
    """Intra-op threads for a stage: ``$GENDA_THREADS``, else ``$OMP_NUM_THREADS``, else 2.

    A fixed default, not the machine's core count: some CPU kernels (e.g. convolution backward) split
    their reductions by thread, so the thread count can change the last bits of a result.  ``0`` means
    torch's own default (all cores)."""
    for var in ("GENDA_THREADS", "OMP_NUM_THREADS"):
        raw = os.environ.get(var)
        if raw:
            try:
                return max(0, int(raw))
            except ValueError:
                from genda.errors import ConfigError

                raise ConfigError(f"{var}={raw!r} must be a whole number of threads") from None
    return DEFAULT_THREADS


def pin_threads_env() -> None:
    """Set OMP/MKL thread variables from :func:`thread_count` before torch is imported (stage start)."""
    n = thread_count()
    if n > 0:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(n)
