"""Real-data DA runs (and A/Bs of recipe knobs) through the pipeline's own stage scripts.

For each *arm* (a name plus ``key=value`` overrides of a base params file) it makes a scratch copy of the
project (``benchmarks/tools/scratch_env.sh``: stage scripts and params, no outputs; the ``genda`` library itself is
imported from this checkout's editable install, so leave ``src/`` alone while a run is going), prepares the data there, trains every
(setting, seed) with ``stages/train_da.py`` -- ``--jobs`` trainings at a time, ``GENDA_THREADS=1`` each, one
params file per seed so seeds train in parallel -- and scores them with ``stages/evaluate_da.py`` (accuracy
mean ± std over seeds, and the training curves of ``da.eval_every``). Trainings checkpoint and finished
seeds are skipped, so rerunning the same command after an interruption continues where it stopped.

    python benchmarks/realdata/da_runs.py WORKDIR --config configs/real_da_cpu.yaml --pair mnistm-usps \\
        --settings source_only dann --seeds 0 1 2 \\
        --arm mnist data.usps_frame=mnist --arm fill data.usps_frame=fill

Writes WORKDIR/<arm>/metrics/da/<pair>.json (+ curves/<pair>.csv) and WORKDIR/results.json: per arm and
setting the target accuracy (mean, std, per seed), training wall time per seed, and the command, params,
commit and machine that produced them. Needs the real data (data.root of the config, e.g. ../shared/data).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))


def set_key(params: dict, dotted: str, value) -> None:
    """``a.b.c`` -> params["a"]["b"]["c"] = value (intermediate mappings created)."""
    *parents, leaf = dotted.split(".")
    node = params
    for k in parents:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[leaf] = value


def arm_params(base: Path, overrides: list[str], pair: str, settings: list[str], seeds: list[int]) -> dict:
    from genda.config import read_yaml

    p = read_yaml(base)
    p["data"]["root"] = str((base.resolve().parents[1] / p["data"]["root"]).resolve())  # relative to the project
    p["da"].update(pairs=[pair], settings=settings, seeds=seeds)
    for o in overrides:
        key, _, val = o.partition("=")
        set_key(p, key, yaml.safe_load(val))
    return p


def machine() -> str:
    from genda.runtime.records import environment

    e = environment()
    return f"{e['cpu_cores']}-core {e['cpu']} ({e['cpu_isa']}), device {e['device']}, torch {e['torch']}"


def run(cmd: list[str], cwd: Path, log: Path, env: dict) -> None:
    with open(log, "a") as f:
        r = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd} (rc {r.returncode}); see {log}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--config", type=Path, default=ROOT / "configs/real_da_cpu.yaml")
    ap.add_argument("--pair", default="mnistm-usps")
    ap.add_argument("--settings", nargs="+", default=["source_only", "dann"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--arm", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"),
                    help="an arm: its name and params overrides (repeatable); none = one arm 'base'")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    # the commit whose code the trainings run: genda is imported from this checkout (editable install) when each
    # training process starts, so keep the checkout's src/ unchanged while a run is going
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "src", "stages"],
                                cwd=ROOT, capture_output=True, text=True).stdout.strip())
    arms = {arm[0]: arm[1:] for arm in (a.arm or [["base"]])}
    w = a.workdir.resolve()
    venv = ROOT / ".venv/bin"
    env = {**os.environ, "PATH": f"{venv}:{os.environ['PATH']}", "GENDA_DEVICE": "cpu", "GENDA_THREADS": "1",
           "GENDA_MLFLOW": os.environ.get("GENDA_MLFLOW", "1")}
    env.pop("GENDA_ROOT", None)
    for name, overrides in arms.items():
        d = w / name
        d.mkdir(parents=True, exist_ok=True)
        p = arm_params(a.config, overrides, a.pair, a.settings, a.seeds)
        yaml.safe_dump(p, open(d / "params_all.yaml", "w"), sort_keys=False)
        for s in a.seeds:
            p["da"]["seeds"] = [s]
            yaml.safe_dump(p, open(d / f"params_seed{s}.yaml", "w"), sort_keys=False)
        run(["bash", "-c", f'source "{ROOT}/benchmarks/tools/scratch_env.sh" "{d}/params_all.yaml" "{d}"'], d,
            d / "prepare.log", env)
    # seed-major order: every arm and setting gets seed 0 before any gets seed 1
    jobs = [(name, t, s) for s in a.seeds for name in arms for t in a.settings]
    walls: dict = {}
    wall_file = w / "wall_times.json"
    if wall_file.exists():
        walls = json.loads(wall_file.read_text())

    def train(job) -> None:
        name, t, s = job
        d = w / name
        if (d / f"models/da/{a.pair}/{t}/seed{s}.pt").exists():
            return
        t0 = time.time()
        run(["python", "stages/train_da.py", a.pair, t], d, d / f"logs_{t}_seed{s}.txt",
            {**env, "GENDA_PARAMS": str(d / f"params_seed{s}.yaml")})
        walls[f"{name}/{t}/seed{s}"] = round(time.time() - t0, 1)
        wall_file.write_text(json.dumps(walls, indent=1))
        print(f"{name} {t} seed{s}: {walls[f'{name}/{t}/seed{s}']:.0f} s", flush=True)

    with ThreadPoolExecutor(a.jobs) as ex:
        list(ex.map(train, jobs))
    results = {"pair": a.pair, "config": str(a.config), "settings": a.settings, "seeds": a.seeds,
               "command": "python benchmarks/realdata/da_runs.py " + " ".join(shlex.quote(x) for x in sys.argv[1:]),
               "commit": commit + ("+uncommitted changes" if dirty else ""), "machine": machine(),
               "threads": "GENDA_THREADS=1 per training, %d trainings at a time" % a.jobs, "arms": {}}
    for name, overrides in arms.items():
        d = w / name
        run(["python", "stages/evaluate_da.py", a.pair], d, d / "evaluate.log",
            {**env, "GENDA_PARAMS": str(d / "params_all.yaml"), "GENDA_THREADS": str(a.jobs)})
        m = json.loads((d / f"metrics/da/{a.pair}.json").read_text())
        results["arms"][name] = {"overrides": overrides, "params": str(d / "params_all.yaml"), "settings": {
            t: {"target_acc": m[t]["target_acc"], "target_acc_std": m[t]["target_acc_std"],
                "source_acc": m[t]["source_acc"], "per_seed": {k: v["target_acc"] for k, v in m[t]["per_seed"].items()},
                **({"target_acc_adabn": m[t]["target_acc_adabn"], "target_acc_adabn_std": m[t]["target_acc_adabn_std"],
                    "per_seed_adabn": {k: v["target_acc_adabn"] for k, v in m[t]["per_seed"].items()}}
                   if "target_acc_adabn" in m[t] else {}),
                "train_wall_s_per_seed": {str(s): walls.get(f"{name}/{t}/seed{s}") for s in a.seeds}}
            for t in a.settings}}
        for t in a.settings:
            r = results["arms"][name]["settings"][t]
            print(f"{name:>12} {t:>14}: target {r['target_acc']:.4f} ± {r['target_acc_std']:.4f}  {r['per_seed']}")
    (w / "results.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
