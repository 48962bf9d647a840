"""Backfill wall records (``walls/<stage>.json``, :mod:`genda.runtime.walls`) from timestamped ``dvc repro`` logs,
for stages that ran before the stage runner recorded its own wall time.

A log line is ``<seconds since start> <dvc output>`` (``benchmarks/tools/timestamp.sh dvc repro ...``). A stage's
wall runs from ``Running stage 'x':`` to the next ``Updating lock file``; a run that never reached it (interrupted)
is added to the stage's next completed run, as a resumed training continues from its checkpoint. Logs are read in
the order given; a later completed run of a stage replaces an earlier one.

    python benchmarks/tools/walls_from_log.py --out real/walls repro1.log repro2.log
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from genda.runtime.walls import record  # noqa: E402

LINE = re.compile(r"^\s*(\d+(?:\.\d+)?) (.*)$")
RUN = re.compile(r"Running stage '([^']+)':")


def stage_walls(logs: list[Path]) -> dict[str, float]:
    done: dict[str, float] = {}
    pending: dict[str, float] = {}  # interrupted runs' seconds, waiting for the stage's next completed run
    for log in logs:
        current, start, last_t = None, 0.0, 0.0
        for raw in log.read_text(errors="replace").splitlines():
            m = LINE.match(raw)
            if not m:
                continue
            t, text = float(m.group(1)), m.group(2)
            last_t = t
            r = RUN.search(text)
            if r:
                current, start = r.group(1).rsplit(":", 1)[-1], t
            elif current and "Updating lock file" in text:
                done[current] = t - start + pending.pop(current, 0.0)
                current = None
        if current:  # the log ended inside a stage: interrupted
            pending[current] = pending.get(current, 0.0) + last_t - start
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("logs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="the walls/ folder of the profile the logs ran")
    ap.add_argument("--only-missing", action="store_true", help="keep stages that already have a record")
    a = ap.parse_args()
    for stage, wall in stage_walls(a.logs).items():
        if a.only_missing and any(a.out.glob(f"{stage}.json")):
            continue
        path = record(stage, wall, a.out, recorded_by="benchmarks/tools/walls_from_log.py", finished=None,
                      logs=[p.as_posix() for p in a.logs])
        print(f"{stage}: {wall:.1f} s -> {path}")


if __name__ == "__main__":
    main()
