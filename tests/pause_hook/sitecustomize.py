"""Test hook (tests/test_resume.py, tests/test_distributed.py): a training that pauses at a known step, so a test
can kill it there -- an observable event instead of a sleep that a starved machine can lose.

Put this folder on PYTHONPATH (``PYTHONPATH=tests/pause_hook``) with ``GENDA_TEST_PAUSE_AT=<step>`` and
``GENDA_TEST_PAUSE_DIR=<folder>``: when a trainer's checkpoint schedule is asked about step ``<step>``
(``Checkpointer.due``, once per step, after the step ran and before any checkpoint of it is written), the process
writes its pid to ``<folder>/rank<RANK>.paused`` and sleeps (for an hour at most) until it is killed.  Without
the variable nothing is patched.  The patch is applied when ``genda.runtime.checkpoint`` is first imported, so torch
is not imported earlier than a stage imports it (threads are pinned first)."""
import os
import sys

_AT = os.environ.get("GENDA_TEST_PAUSE_AT")
_TARGET = "genda.runtime.checkpoint"


def _patch(module) -> None:
    from pathlib import Path

    at, folder = int(_AT), Path(os.environ["GENDA_TEST_PAUSE_DIR"])
    due = module.Checkpointer.due

    def paused_due(self, step):
        if step == at:
            import time

            folder.mkdir(parents=True, exist_ok=True)
            mark = folder / f"rank{os.environ.get('RANK', '0')}.paused"
            tmp = mark.with_suffix(".tmp")
            tmp.write_text(str(os.getpid()))
            tmp.replace(mark)
            time.sleep(3600)
        return due(self, step)

    module.Checkpointer.due = paused_due


if _AT:
    import importlib.abc
    import importlib.util

    class _Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != _TARGET:
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                _patch(module)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _Hook())
