"""A/B of ``cond_sample.bn_mode`` (eval | train BatchNorm while sampling; issue 9, hypothesis 4) on a trained
conditional generator, through the pipeline's ``sample_cond`` and ``evaluate_cond`` stage scripts.

Sampling needs no retraining, so each arm is scored over several sampling seeds (``cond_sample.seed``) of
the same trained model. Run it in a project folder (e.g. the scratch copy of ``benchmarks/realdata/cpu_real_cond.sh``)
where ``train_classifier`` and ``train_cond <name>`` have run:

    python benchmarks/ab/ab_sample_bn_mode.py WORKDIR acgan --params configs/real_cond_cpu.yaml --seeds 2024 2025 2026

Writes WORKDIR/ab_bn_mode_<name>.json: per arm, the generated-digit accuracy and digit FID per sampling seed,
their mean ± std, and the command, params, commit and machine.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    from genda.config import read_yaml

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workdir", type=Path)
    ap.add_argument("name")
    ap.add_argument("--params", default="params.yaml", help="params file, relative to WORKDIR")
    ap.add_argument("--seeds", nargs="+", type=int, default=[2024, 2025, 2026])
    ap.add_argument("--modes", nargs="+", default=["eval", "train"])
    a = ap.parse_args()
    w = a.workdir.resolve()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    base = read_yaml(w / a.params)
    env = {**os.environ, "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}", "GENDA_DEVICE": "cpu",
           "GENDA_MLFLOW": "0"}
    out = {"name": a.name, "what": "cond_sample.bn_mode A/B (issue 9, hypothesis 4): same trained model, "
                                    "several sampling seeds per arm",
           "command": "python benchmarks/ab/ab_sample_bn_mode.py " + " ".join(shlex.quote(x) for x in sys.argv[1:]),
           "params": f"{a.params} with cond_sample.bn_mode and cond_sample.seed per run", "commit": commit,
           "arms": {}}
    for mode in a.modes:
        runs = {}
        for seed in a.seeds:
            p = json.loads(json.dumps(base))
            p["cond_sample"].update(bn_mode=mode, seed=seed)
            pf = w / f"params_bn_{mode}_{seed}.yaml"
            pf.write_text(yaml.safe_dump(p, sort_keys=False))
            for stage in ("sample_cond.py", "evaluate_cond.py"):
                subprocess.run(["python", f"stages/{stage}", a.name], cwd=w, check=True, env={**env, "GENDA_PARAMS": str(pf)},
                               stdout=subprocess.DEVNULL)
            m = json.loads((w / f"metrics/cond/{a.name}.json").read_text())
            runs[str(seed)] = {k: m.get(k) for k in ("accuracy", "digit_fid", "digit_fid_real_floor", "fid",
                                                       "fid_real_floor", "classifier_real_acc", "extractor")}
            out["machine"] = {k: m["env"].get(k) for k in ("cpu", "cpu_isa", "cpu_cores", "device", "torch")}
            print(f"{mode} seed {seed}: accuracy {m['accuracy']:.4f}, digit FID {m['digit_fid']:.2f} "
                  f"(floor {m['digit_fid_real_floor']:.2f})", flush=True)
        acc = [r["accuracy"] for r in runs.values()]
        fid = [r["digit_fid"] for r in runs.values()]
        out["arms"][mode] = {"accuracy": statistics.mean(acc), "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                             "digit_fid": statistics.mean(fid), "digit_fid_std": statistics.stdev(fid) if len(fid) > 1 else 0.0,
                             "per_seed": runs}
    (w / f"ab_bn_mode_{a.name}.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
