"""Tiny runner shared by the stage scripts: user errors become one clear line and exit code 2."""
from __future__ import annotations

import os
import sys
import time
from typing import Callable

from genda.errors import GendaError


def run(main: Callable[[], None], *, distributed: bool = False, record_wall: bool = True) -> None:
    """Run a stage's ``main``: threads pinned (:func:`genda.runtime.device.thread_count`) before torch loads;
    with ``distributed=True`` (training stages) it runs on ``$GENDA_NPROC`` processes through torchrun
    (:mod:`genda.runtime.distributed`). When DVC ran it and ``record_wall``, the stage's wall time goes to
    ``walls/<stage>.json`` (:mod:`genda.runtime.walls`; the summary and the report pass ``record_wall=False``)."""
    t0 = time.perf_counter()  # the wall record counts from here (torch & co imported inside main)
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
        _record_wall(time.perf_counter() - t0, record_wall)
    except GendaError as e:
        print(f"genda: error: {e}", file=sys.stderr)
        sys.exit(2)


def _record_wall(wall_s: float, wanted: bool) -> None:
    from genda.runtime import walls

    name = walls.stage_name()
    if wanted and name and os.environ.get("RANK", "0") == "0":
        walls.record(name, wall_s)
