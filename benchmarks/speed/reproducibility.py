"""How far do results reproduce?  Train the same stages under different thread counts and again under the
same one, and compare the weights bit for bit.

Runs the pipeline's own stage scripts (train_gan@dcgan, train_da@mnistm-usps-dann) in scratch copies of the
project on the embedded data with the default params (shortened), once per configuration:
``threads=2`` twice (a rerun) and ``threads=1``.  Writes a JSON with, per stage, whether the weights of each
run equal the first run's and the largest absolute difference, plus the environment record.

Usage: .venv/bin/python benchmarks/speed/reproducibility.py [OUT_JSON]
       (default benchmarks/results/reproducibility_<cpu capability>.json; a few minutes on 2 cores)
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
STAGES = {"train_gan@dcgan": (["stages/train_gan.py", "dcgan"], "models/gan/dcgan/generator.pt", "G"),
          "train_da@mnistm-usps-dann": (["stages/train_da.py", "mnistm-usps", "dann"],
                                        "models/da/mnistm-usps/dann/seed0.pt", "model")}
RUNS = [("threads2", "2"), ("threads2_again", "2"), ("threads1", "1")]


def project(dest: Path) -> Path:
    for name in ("stages", "src"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "data" / "raw", dest / "data" / "raw")
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["data"].update(domains=["mnistm", "usps"])
    p["gan"]["steps"] = 60
    p["da"].update(steps=150, pairs=["mnistm-usps"])
    (dest / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    return dest


def _run(cmd: list[str], cwd: Path, env: dict) -> None:
    r = subprocess.run([sys.executable, *cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{r.stderr[-3000:]}")


def main() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from genda.runtime.records import environment

    env0 = {**os.environ, "GENDA_MLFLOW": "0", "GENDA_DEVICE": "cpu", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    weights, walls = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for run, threads in RUNS:
            d = project(Path(tmp) / run)
            env = {**env0, "GENDA_THREADS": threads}
            _run(["stages/prepare.py"], d, env)
            for stage, (cmd, model, key) in STAGES.items():
                t0 = time.time()
                _run(cmd, d, env)
                walls[f"{stage}/{run}"] = round(time.time() - t0, 1)
                weights[(stage, run)] = torch.load(d / model, weights_only=True)[key]
    result = {"command": "python benchmarks/speed/reproducibility.py", "env": environment(), "wall_s": walls, "stages": {}}
    for stage in STAGES:
        ref = weights[(stage, RUNS[0][0])]
        result["stages"][stage] = {
            run: {"identical_to_threads2": all(torch.equal(ref[k], weights[(stage, run)][k]) for k in ref),
                  "max_abs_diff": max(float((ref[k].float() - weights[(stage, run)][k].float()).abs().max())
                                      for k in ref if ref[k].is_floating_point())}
            for run, _ in RUNS[1:]}
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        ROOT / "benchmarks/results" / f"reproducibility_{torch.backends.cpu.get_cpu_capability().lower()}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["stages"], indent=2))


if __name__ == "__main__":
    main()
