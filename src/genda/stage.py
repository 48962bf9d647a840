"""Tiny runner shared by the stage scripts: user errors become one clear line and exit code 2."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

from genda.errors import GendaError


def run(main: Callable[[], None], *, distributed: bool = False) -> None:
    """Run a stage's ``main``: threads pinned (:func:`genda.runtime.thread_count`) before torch loads;
    with ``distributed=True`` (training stages) it runs on ``$GENDA_NPROC`` processes through torchrun
    (:mod:`genda.distributed`)."""
    from genda import warm
    from genda.threads import pin_threads_env

    warm.handoff()  # GENDA_WARM=1: run in the warm fork server and exit with its status (genda.warm)
    pin_threads_env()
    from genda.allocator import keep_heap

    keep_heap()  # tensor buffers stay in the C heap between steps (genda.allocator)
    try:
        if distributed:
            from genda import distributed as dist

            dist.maybe_relaunch()
            dist.init_from_env()
        main()
        if distributed:
            dist.shutdown()
    except GendaError as e:
        print(f"genda: error: {e}", file=sys.stderr)
        sys.exit(2)


def write_json(obj, path: str | Path) -> None:
    """Write JSON (sorted keys, trailing newline); in a distributed run only rank 0 writes."""
    from genda.distributed import is_main_process

    if not is_main_process():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_metrics(obj: dict, path: str | Path) -> None:
    """A metrics JSON with the environment that produced it under ``env`` (see :func:`genda.runtime.environment`)."""
    from genda.runtime import environment

    write_json({**obj, "env": environment()}, path)
