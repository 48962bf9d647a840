"""Tiny runner shared by the stage scripts: user errors become one clear line and exit code 2."""
from __future__ import annotations

import sys
from typing import Callable

from genda.errors import GendaError


def run(main: Callable[[], None], *, distributed: bool = False) -> None:
    """Run a stage's ``main``: threads pinned (:func:`genda.runtime.device.thread_count`) before torch loads;
    with ``distributed=True`` (training stages) it runs on ``$GENDA_NPROC`` processes through torchrun
    (:mod:`genda.runtime.distributed`)."""
    from genda.runtime import forkserver
    from genda.runtime.threads import pin_threads_env

    forkserver.handoff()  # GENDA_WARM=1: run in the warm fork server and exit with its status (genda.runtime.forkserver)
    try:
        pin_threads_env()  # a bad GENDA_THREADS is a user error like any other
        from genda.runtime.allocator import keep_heap

        keep_heap()  # tensor buffers stay in the C heap between steps (genda.runtime.allocator)
        if distributed:
            from genda.runtime import distributed as dist

            dist.maybe_relaunch()
            dist.init_from_env()
        main()
        if distributed:
            dist.shutdown()
    except GendaError as e:
        print(f"genda: error: {e}", file=sys.stderr)
        sys.exit(2)




