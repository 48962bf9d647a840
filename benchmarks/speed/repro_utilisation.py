"""Benchmark: how busy the CPU is during each stage of a pipeline run (issue 10 item 4: where the time goes).

``record`` runs a command (default ``make repro``) under ``benchmarks/tools/timestamp.sh`` -- every output line
stamped with the seconds since the start -- while a thread samples ``/proc/stat`` once a second; ``analyse``
splits the samples at DVC's ``Running stage`` lines and writes, per stage, its wall time, the share of the
machine's cores that were busy (user + system + ...; idle and iowait are idle) and the idle-core time converted
to wall seconds (``wall x idle share``: what a perfect scheduler could at most have filled with other work)::

    python benchmarks/speed/repro_utilisation.py record --log repro.log --cpu cpu.log   # in a fresh clone; make repro
    python benchmarks/speed/repro_utilisation.py analyse --log repro.log --cpu cpu.log --out result.json --note "..."

A pipeline whose stages keep the cores busy leaves little for running independent stages side by side
(``dvc repro`` runs one stage at a time): the idle-core total bounds what parallel stages could save.
Results: ``benchmarks/results/repro_utilisation_amd_zen5.json``.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGE = re.compile(r"\s*([\d.]+) Running stage '([^']+)'")
STAMP = re.compile(r"\s*([\d.]+) ")


def _proc_stat() -> tuple[int, int]:
    """(idle + iowait, total) jiffies of all cores."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    return fields[3] + fields[4], sum(fields)


def record(cmd: list[str], log: Path, cpu: Path) -> int:
    stop = threading.Event()

    def sample(t0: float) -> None:
        prev = _proc_stat()
        with open(cpu, "w") as out:
            while not stop.wait(1.0):
                cur = _proc_stat()
                out.write(f"{time.time() - t0:.3f} {cur[0] - prev[0]} {cur[1] - prev[1]}\n")
                out.flush()
                prev = cur

    t0 = time.time()
    thread = threading.Thread(target=sample, args=(t0,), daemon=True)
    thread.start()
    with open(log, "w") as out:
        code = subprocess.call(["bash", str(ROOT / "benchmarks" / "tools" / "timestamp.sh"), *cmd], stdout=out,
                               stderr=subprocess.STDOUT)
    with open(log, "a") as out:  # the end of the last stage: when the command ended, not its last output line
        out.write(f"{time.time() - t0:7.1f} [repro_utilisation] exit status {code}\n")
    stop.set()
    thread.join()
    return code


def analyse(log: Path, cpu: Path, offset: float = 0.0) -> dict:
    """Per-stage wall, busy share and idle-core wall seconds.  ``offset``: seconds the sampler's clock started
    before the timestamped command (0 when both come from ``record``)."""
    samples = []
    for line in cpu.read_text().splitlines():
        t, idle, total = line.split()
        samples.append((float(t) - offset, int(idle), int(total)))
    stages, last = [], 0.0
    for line in log.read_text().splitlines():
        m = STAMP.match(line)
        if m:
            last = float(m.group(1))
        m = STAGE.match(line)
        if m:
            stages.append((float(m.group(1)), m.group(2)))
    if not stages:
        raise SystemExit(f"{log}: no 'Running stage' lines (was it written by benchmarks/tools/timestamp.sh?)")
    rows = []
    for i, (start, name) in enumerate(stages):
        end = stages[i + 1][0] if i + 1 < len(stages) else last
        sel = [s for s in samples if start < s[0] <= end]
        idle, total = sum(s[1] for s in sel), sum(s[2] for s in sel)
        busy = 1.0 - idle / total if total else None
        rows.append({"stage": name, "wall_s": round(end - start, 1),
                     "busy": None if busy is None else round(busy, 3),
                     "idle_core_wall_s": round((end - start) * (1.0 - busy), 1) if busy is not None else None})
    wall = sum(r["wall_s"] for r in rows)
    idle_wall = sum(r["idle_core_wall_s"] or 0.0 for r in rows)
    rows.sort(key=lambda r: -r["wall_s"])
    return {"stages_run": len(rows), "stage_wall_s": round(wall, 1), "total_wall_s": round(last, 1),
            "idle_core_wall_s": round(idle_wall, 1), "busy_share": round(1.0 - idle_wall / wall, 3),
            "stages": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="run a command with a /proc/stat sampler beside it")
    r.add_argument("--log", type=Path, required=True)
    r.add_argument("--cpu", type=Path, required=True)
    r.add_argument("command", nargs=argparse.REMAINDER, help="the command to run (default: make repro); "
                   "put -- before one that has options of its own")
    a = sub.add_parser("analyse", help="per-stage busy share from a record's two files")
    a.add_argument("--log", type=Path, required=True)
    a.add_argument("--cpu", type=Path, required=True)
    a.add_argument("--offset", type=float, default=0.0)
    a.add_argument("--out", type=Path)
    a.add_argument("--note", default="")
    args = ap.parse_args()
    if args.cmd == "record":
        cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
        raise SystemExit(record(cmd or ["make", "repro"], args.log, args.cpu))
    res = {"what": __doc__.split("\n\n")[0], "note": args.note, **analyse(args.log, args.cpu, args.offset)}
    text = json.dumps(res, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "stages"}, indent=1))


if __name__ == "__main__":
    main()
