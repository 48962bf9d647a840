"""``dvc repro`` on several lanes: the stages of one ``dvc.yaml`` that are not up to date, N at a time.

DVC runs one stage after another. Its documented way to use more cores is to start several ``dvc repro`` on
independent branches: a ``repro`` holds the repository lock only while it decides and records, not while a stage's
command runs (``dvc --wait-for-lock`` makes the others queue for it instead of failing). This module is that, done
for the user, as ``make -j`` does for a Makefile:

1. one ``Repo.status`` call finds the stages of ``dvc.yaml`` (in the current folder) that are not up to date; their
   downstream stages are added (they will change once their inputs do). Nothing to run: it returns in ~3 s;
2. a stage is launched as ``dvc --wait-for-lock repro --single-item <stage>`` once every upstream stage in that set has
   finished, at most ``jobs`` at a time, the one with the longest chain of recorded stage wall times below it first
   (``walls/<stage>.json``, :mod:`genda.runtime.walls`; 30 s where none is recorded), each with
   ``GENDA_THREADS=threads`` (default: the CPU count divided by ``jobs``, at least 1);
3. each stage's output goes to ``.dvc/tmp/lanes/<profile folder, or root>/<stage>.log``; one line per stage start and end is printed, and on a
   failure the failed stage's last lines, after which no new stage starts, the running ones finish and the exit
   code is 1.

DVC still decides whether each stage runs (a stage whose inputs came out unchanged is skipped, the run cache is
used) and records it in ``dvc.lock``, so the outcome is that of ``dvc repro``. Stage results do not depend on the
order, but they may on the thread count (floating-point sums are split differently): ``make repro-real`` runs two
lanes of one thread each, the thread count of the real profile's records; ``make repro`` keeps plain ``dvc repro`` at
two threads a stage, that of the default's.

    python -m genda.pipeline.parallel --jobs 2          # in the folder of a dvc.yaml (the root, or real/)
    python -m genda.pipeline.parallel --dry              # the stages it would run, in launch order
    python -m genda.pipeline.parallel 'tsne@*'           # only these stages and what they need, as `dvc repro TARGET`

Targets (stage names, a foreach group such as ``tsne``, or shell patterns such as ``'train_da@mnist-*'``) limit the run
to the targets and the stages upstream of them, as ``dvc repro <targets>`` does: stages downstream of a target are
left out, even where they are not up to date.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_WALL_S = 30.0  # a stage that never recorded a wall time
LOG_TAIL = 30  # lines of a failed stage's log that are printed


def plan(cwd: Path, targets: list[str] | None = None) -> tuple[dict[str, set[str]], list[str], Path]:
    """``(upstream, todo, root)``: for every stage of ``cwd/dvc.yaml``, the names of the stages of that file it
    depends on; the stages that are not up to date plus everything downstream of them, in ``dvc.yaml`` order (with
    ``targets``: only those that are targets or upstream of one, :func:`select`); the repository's root."""
    from dvc.repo import Repo

    dvcfile = str((cwd / "dvc.yaml").resolve())
    with Repo(str(cwd)) as repo:
        graph = repo.index.graph  # edge a -> b: stage a depends on stage b
        mine = [s for s in repo.index.stages if os.path.abspath(s.path) == dvcfile]
        name = {s: s.addressing.rsplit(":", 1)[-1] for s in mine}
        upstream = {name[s]: {name[d] for d in graph.successors(s) if d in name} for s in mine}
        status = repo.status(targets=[dvcfile])  # keyed by addressing, as the stages (relative to this process's cwd)
        stale = {name[s] for s in mine if s.addressing in status}
        root = Path(repo.root_dir)
    downstream: dict[str, set[str]] = {n: set() for n in upstream}
    for n, ups in upstream.items():
        for u in ups:
            downstream[u].add(n)
    todo, stack = set(), list(stale)
    while stack:
        n = stack.pop()
        if n not in todo:
            todo.add(n)
            stack.extend(downstream[n])
    order = [name[s] for s in mine]  # dvc.yaml order: the tie-break
    if targets:
        todo &= select(upstream, targets)
    return upstream, [n for n in order if n in todo], root


def select(upstream: dict[str, set[str]], targets: list[str]) -> set[str]:
    """The stages ``targets`` name and every stage upstream of them (directly or not). A target is a stage name
    (``evaluate_da@mnist-mnistm``), a foreach group (``evaluate_da``: all its ``@`` items) or a shell pattern
    (``'train_da@mnist-*'``); one that names no stage is a :class:`ValueError` listing the valid names."""
    chosen: set[str] = set()
    for t in targets:
        hit = {n for n in upstream if n == t or n.split("@", 1)[0] == t or fnmatch.fnmatchcase(n, t)}
        if not hit:
            groups = sorted({n.split("@", 1)[0] for n in upstream})
            raise ValueError(f"parallel: target {t!r} names no stage of this dvc.yaml; valid: a stage name, a group "
                             f"({', '.join(groups)}) or a pattern such as 'train_da@*'")
        chosen |= hit
    stack = list(chosen)
    while stack:
        for u in upstream[stack.pop()]:
            if u not in chosen:
                chosen.add(u)
                stack.append(u)
    return chosen


def critical_path(upstream: dict[str, set[str]], todo: list[str], wall: dict[str, float]) -> dict[str, float]:
    """For each stage in ``todo``: its wall time plus the longest chain of wall times of the ``todo`` stages that
    depend on it, directly or not (the priority of a list scheduler; longest first)."""
    down: dict[str, set[str]] = {n: set() for n in todo}
    for n in todo:
        for u in upstream[n] & set(todo):
            down[u].add(n)
    memo: dict[str, float] = {}

    def length(n: str) -> float:
        if n not in memo:
            memo[n] = wall.get(n, DEFAULT_WALL_S) + max((length(d) for d in down[n]), default=0.0)
        return memo[n]

    return {n: length(n) for n in todo}


def recorded_walls(cwd: Path) -> dict[str, float]:
    """The last recorded wall time of every stage that wrote ``walls/<stage>.json`` (the records ``summary`` sums)."""
    from genda.pipeline.summary import stage_walls

    return {stage: float(w["wall_s"]) for stage, w in stage_walls(cwd / "walls").items()}


def schedule(upstream: dict[str, set[str]], todo: list[str], priority: dict[str, float]) -> list[str]:
    """The launch order with one lane (what ``--dry`` prints): ready stages, highest priority first."""
    order: list[str] = []
    left = list(todo)
    while left:
        n = _next(left, set(left), upstream, priority)
        order.append(n)
        left.remove(n)
    return order


def _next(left: list[str], pending: set[str], upstream: dict[str, set[str]], priority: dict[str, float]) -> str | None:
    """The stage of ``left`` to launch next: none of its upstream stages pending, the highest priority, then the
    earliest in ``dvc.yaml``; None when every stage left waits for one."""
    ready = [n for n in left if not (upstream[n] & (pending - {n}))]
    return max(ready, key=lambda s: (priority[s], -left.index(s))) if ready else None


def run(cwd: Path, jobs: int, threads: int, dvc: str = "dvc", out=sys.stdout, targets: list[str] | None = None) -> int:
    """Run the stages of ``cwd/dvc.yaml`` that are not up to date (of ``targets`` and their upstream stages, when
    given) on ``jobs`` lanes; 0 when all succeeded."""
    upstream, todo, root = plan(cwd, targets)
    if not todo:
        print("parallel: every stage is up to date", file=out)
        return 0
    priority = critical_path(upstream, todo, recorded_walls(cwd))
    logs = root / ".dvc" / "tmp" / "lanes" / ("_".join(cwd.resolve().relative_to(root).parts) or "root")
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GENDA_THREADS=str(threads))
    left, running, failed = list(todo), {}, []
    t0 = time.time()
    print(f"parallel: {len(todo)} stages on {jobs} lane(s) x {threads} thread(s); logs in {logs}", file=out, flush=True)
    while left or running:
        pending = set(left) | set(running)
        while not failed and len(running) < jobs:
            n = _next(left, pending, upstream, priority)
            if n is None:
                break
            left.remove(n)
            log = (logs / f"{n}.log").open("w")
            running[n] = (subprocess.Popen([dvc, "--wait-for-lock", "repro", "--single-item", n], cwd=cwd, env=env,
                                           stdout=log, stderr=subprocess.STDOUT), time.time(), log)
            print(f"  start {n}", file=out, flush=True)
        if failed and not running:
            break
        try:
            time.sleep(0.2)
        except KeyboardInterrupt:  # Ctrl-C reached the dvc processes too: they stop their stages (checkpoints kept)
            for proc, _, _ in running.values():
                proc.wait()
            print(f"parallel: interrupted; rerun the same command to continue ({', '.join(running)} stopped)",
                  file=out, flush=True)
            return 130
        for n, (proc, start, log) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[n]
            took = time.time() - start
            if proc.returncode == 0:
                print(f"  done  {n} ({took:.0f} s)", file=out, flush=True)
                continue
            failed.append(n)
            tail = (logs / f"{n}.log").read_text(errors="replace").splitlines()[-LOG_TAIL:]
            print(f"  FAILED {n} (exit {proc.returncode}, {took:.0f} s); last lines of {logs / (n + '.log')}:",
                  file=out, flush=True)
            print("\n".join("    " + line for line in tail), file=out, flush=True)
    wall = time.time() - t0
    if failed:
        print(f"parallel: {', '.join(failed)} failed; not started: {', '.join(left) or 'none'} ({wall:.0f} s)",
              file=out, flush=True)
        return 1
    print(f"parallel: {len(todo)} stages in {wall:.0f} s", file=out, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", "-j", type=int, default=2, help="stages at a time (default 2)")
    ap.add_argument("--threads", type=int, default=0, help="GENDA_THREADS of each stage (default: CPUs / jobs)")
    ap.add_argument("--dry", action="store_true", help="print the stages that would run, in one lane's order")
    ap.add_argument("targets", nargs="*", help="only these stages (names, groups or patterns) and their upstream")
    a = ap.parse_args(argv)
    if a.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {a.jobs}")
    cwd = Path.cwd()
    if not (cwd / "dvc.yaml").is_file():
        print(f"parallel: no dvc.yaml in {cwd}", file=sys.stderr)
        return 2
    try:
        if a.dry:
            upstream, todo, _ = plan(cwd, a.targets)
            order = schedule(upstream, todo, critical_path(upstream, todo, recorded_walls(cwd)))
            print("\n".join(order) if order else "every stage is up to date")
            return 0
        threads = a.threads or max(1, (os.cpu_count() or 1) // a.jobs)
        return run(cwd, a.jobs, threads, targets=a.targets)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
