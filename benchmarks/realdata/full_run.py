"""Issue 9's real-data results at full size in one command -- sized for one GPU -- through the stage scripts.

Four *arms*, each a scratch copy of the project (``benchmarks/tools/scratch_env.sh``) with its own params file made
from the committed full-size configs:

=========  ===========================  =====================================================================
arm        params                        runs
=========  ===========================  =====================================================================
da_mu      configs/real_digits.yaml      MNIST-M -> USPS (USPS ``mnist`` framing): source-only, DANN,
                                         target-only, mean teacher x seeds 0-2 (train_da, evaluate_da)
da_mm      configs/real_digits.yaml      MNIST -> MNIST-M: source-only, DANN, seed 0
cond       configs/real_digits.yaml      digit classifier, ACGAN and conditional DDPM on MNIST-M
                                         (train_classifier, train_cond, sample_cond, evaluate_cond)
faces      configs/real_faces.yaml       CelebA 64x64 Method A (dcgan) and Method B (dcgan_tricks)
                                         (train_gan, sample_gan, evaluate_gan)
=========  ===========================  =====================================================================

Every training is its own process (``--jobs`` at a time: small digit networks leave a big GPU mostly idle,
so several share it), then the evaluations. The results become issue 9's summary entries
(``da/mnistm-usps/dann``, ``da/mnistm-usps/best``, ``da/mnist-mnistm/dann``, ``cond/acgan/accuracy``,
``cond/ddpm/accuracy``, ``faces/dcgan_tricks/face_rate``, ...) with command, params, commit, wall time and
machine, in ``WORKDIR/summary.json``; ``--record`` also merges them into ``benchmarks/results/summary.json``
as ``<key>@full`` (and regenerates README's table).

    python benchmarks/realdata/full_run.py /tmp/genda_full --jobs 8                    # on the GPU machine
    python benchmarks/realdata/full_run.py /tmp/genda_smoke --smoke --jobs 2           # CPU: embedded data, a few steps

``--smoke`` checks the whole chain in a couple of minutes on a CPU (embedded data, every step count tiny); its
numbers mean nothing. Needs ``../shared/data`` otherwise (``data.root`` of the configs).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "benchmarks/realdata"), str(ROOT / "benchmarks/tools"), str(ROOT / "src")]

from da_runs import machine, run, set_key  # noqa: E402

MU_SETTINGS, MU_SEEDS = ["source_only", "dann", "target_only", "mean_teacher"], [0, 1, 2]
ARMS = {
    "da_mu": ("configs/real_digits.yaml", {"data.domains": ["mnistm", "usps"], "data.usps_frame": "mnist",
                                           "da.pairs": ["mnistm-usps"], "da.settings": MU_SETTINGS,
                                           "da.seeds": MU_SEEDS}),
    "da_mm": ("configs/real_digits.yaml", {"data.domains": ["mnist", "mnistm"], "da.pairs": ["mnist-mnistm"],
                                           "da.settings": ["source_only", "dann"], "da.seeds": [0]}),
    "cond": ("configs/real_digits.yaml", {"data.domains": ["mnistm", "usps"], "da.pairs": ["mnistm-usps"]}),
    "faces": ("configs/real_faces.yaml", {}),
}
COND_GENS, FACE_GANS = ("acgan", "ddpm"), ("dcgan", "dcgan_tricks")
# --smoke: the same chain on embedded data with every length tiny (a CPU check of the script, not a result)
SMOKE = {"data.source": "embedded", "data.max_faces": 200, "da.steps": 4, "da.batch_size": 16,
         "da.checkpoint_every": 2, "da.eval_every": 2, "da.log_every": 2, "da.tsne_points": 20,
         "classifier.steps": 4, "classifier.checkpoint_every": 2, "classifier.log_every": 2,
         "cond.steps": 3, "cond.batch_size": 8, "cond.checkpoint_every": 2, "cond.log_every": 1,
         "cond.curve_every": 2, "cond.curve_per_class": 2, "cond.ngf": 8, "cond.ndf": 8, "cond.n_feat": 16,
         "cond_sample.n_per_class": 3, "cond_sample.ddim_steps": 3, "cond_sample.batch_size": 50,
         "gan.steps": 2, "gan.batch_size": 8, "gan.ngf": 8, "gan.ndf": 8, "gan.checkpoint_every": 2,
         "gan.log_every": 1, "sample.n_images": 24, "evaluate.kid_subset_size": 10}


def arm_params(arm: str, smoke: bool) -> dict:
    from genda.config import read_yaml

    config, overrides = ARMS[arm]
    p = read_yaml(ROOT / config)
    p["data"]["root"] = str((ROOT / p["data"]["root"]).resolve())
    if arm == "cond":
        p["cond_gens"] = {g: p["cond_gens"][g] for g in COND_GENS}
    if arm == "faces":
        p["face_gans"] = {g: p["face_gans"][g] for g in FACE_GANS}
    for key, value in {**overrides, **(SMOKE if smoke else {})}.items():
        set_key(p, key, value)
    if smoke:
        for entry in list(p.get("cond_gens", {}).values()) + list(p.get("face_gans", {}).values()):
            for k in ("steps", "batch_size", "n_feat", "ngf", "ndf"):
                entry.pop(k, None)  # per-entry lengths would undo the smoke shrink
    return p


def jobs_of(arm: str, p: dict) -> tuple[list[tuple], list[tuple]]:
    """(training jobs, evaluation jobs) of an arm: each ``(arm, params file name, stage script, *args)``."""
    if arm.startswith("da_"):
        pair = p["da"]["pairs"][0]
        train = [(arm, f"params_seed{s}.yaml", "train_da.py", pair, t) for s in p["da"]["seeds"]
                 for t in p["da"]["settings"]]
        return train, [(arm, "params.yaml", "evaluate_da.py", pair)]
    if arm == "cond":
        train = [(arm, "params.yaml", "train_classifier.py")] + [(arm, "params.yaml", "train_cond.py", g)
                                                                  for g in COND_GENS]
        return train, [(arm, "params.yaml", s, g) for g in COND_GENS for s in ("sample_cond.py", "evaluate_cond.py")]
    train = [(arm, "params.yaml", "train_gan.py", g) for g in FACE_GANS]
    return train, [(arm, "params.yaml", s, g) for g in FACE_GANS for s in ("sample_gan.py", "evaluate_gan.py")]


def summary_entries(w: Path, walls: dict, info: dict) -> dict:
    """Issue 9's summary keys from the arms' metrics files."""

    def load(rel: str) -> dict:
        return json.loads((w / rel).read_text())

    def entry(value, target=None, **extra) -> dict:
        return {"value": round(float(value), 4), "target": target, **extra, **info}

    out = {}
    mu, mm = load("da_mu/metrics/da/mnistm-usps.json"), load("da_mm/metrics/da/mnist-mnistm.json")
    for key, m, setting, target in (("da/mnistm-usps/dann", mu, "dann", 0.90),
                                    ("da/mnistm-usps/best", mu, "mean_teacher", 0.97),
                                    ("da/mnistm-usps/source_only", mu, "source_only", None),
                                    ("da/mnistm-usps/target_only", mu, "target_only", None),
                                    ("da/mnist-mnistm/dann", mm, "dann", 0.77),
                                    ("da/mnist-mnistm/source_only", mm, "source_only", None)):
        r = m[setting]
        arm = "da_mu" if m is mu else "da_mm"
        out[key] = entry(r["target_acc"], target, std=round(r["target_acc_std"], 4), n_seeds=r["n_seeds"],
                         setting=setting, target_acc_adabn=round(r["target_acc_adabn"], 4),
                         **({"usps_frame": "mnist"} if m is mu else {}),
                         wall_s=round(sum(v for k, v in walls.items() if k.startswith(f"{arm}/train_da.py")
                                          and f"/{setting}/seed" in k)))
    for g, target in (("acgan", 0.96), ("ddpm", 0.98)):
        m = load(f"cond/metrics/cond/{g}.json")
        out[f"cond/{g}/accuracy"] = entry(m["accuracy"], target, digit_fid=round(m["digit_fid"], 3),
                                          digit_fid_real_floor=round(m["digit_fid_real_floor"], 3),
                                          wall_s=round(walls.get(f"cond/train_cond.py/{g}", 0)))
    out["cond/classifier/real_acc"] = entry(load("cond/metrics/classifier.json")["test_acc"],
                                            wall_s=round(walls.get("cond/train_classifier.py", 0)))
    for g, target in (("dcgan", None), ("dcgan_tricks", 0.90)):
        m = load(f"faces/metrics/gan/{g}/eval.json")
        out[f"faces/{g}/face_rate"] = entry(m["face_rate"], target, fid=round(m["fid"], 3),
                                            fid_real_floor=round(m["fid_real_floor"], 3), extractor=m["extractor"],
                                            wall_s=round(walls.get(f"faces/train_gan.py/{g}", 0)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--jobs", type=int, default=8, help="processes at a time (they share the GPU)")
    ap.add_argument("--smoke", action="store_true", help="embedded data, tiny lengths: a CPU check of the chain")
    ap.add_argument("--record", action="store_true",
                    help="merge the entries into benchmarks/results/summary.json as <key>@full")
    a = ap.parse_args()
    t_start = time.time()
    w = a.workdir.resolve()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    threads = max(1, (os.cpu_count() or 2) // a.jobs)
    env = {**os.environ, "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}", "GENDA_THREADS": str(threads),
           "GENDA_MLFLOW": os.environ.get("GENDA_MLFLOW", "0")}
    if a.smoke:
        env["GENDA_DEVICE"] = "cpu"
    env.pop("GENDA_ROOT", None)
    train, evals = [], []
    for arm in ARMS:
        d = w / arm
        d.mkdir(parents=True, exist_ok=True)
        p = arm_params(arm, a.smoke)
        yaml.safe_dump(p, open(d / "params_all.yaml", "w"), sort_keys=False)
        for s in p["da"]["seeds"]:
            yaml.safe_dump({**p, "da": {**p["da"], "seeds": [s]}}, open(d / f"params_seed{s}.yaml", "w"), sort_keys=False)
        t, e = jobs_of(arm, p)
        train += t
        evals += e

    def prepare(arm: str) -> None:
        d = w / arm
        run(["bash", "-c", f'source "{ROOT}/benchmarks/tools/scratch_env.sh" "{d}/params_all.yaml" "{d}"'], d,
            d / "prepare.log", env)
        (d / "params.yaml").write_text((d / "params_all.yaml").read_text())

    walls: dict = {}

    def stage(job: tuple) -> None:
        arm, params, script, *args = job
        d = w / arm
        t0 = time.time()
        run(["python", f"stages/{script}", *args], d, d / f"log_{script[:-3]}_{'_'.join(args)}_{params[:-5]}.txt",
            {**env, "GENDA_PARAMS": str(d / params)})
        key = "/".join([arm, script, *args]) + (f"/{params[7:-5]}" if params.startswith("params_seed") else "")
        walls[key] = round(time.time() - t0, 1)
        print(f"{key}: {walls[key]:.0f} s", flush=True)

    with ThreadPoolExecutor(a.jobs) as ex:
        list(ex.map(prepare, ARMS))
        list(ex.map(stage, train))
        # sample before evaluate within a generator; different generators and arms in parallel
        firsts = [j for j in evals if j[2] in ("sample_cond.py", "sample_gan.py", "evaluate_da.py")]
        list(ex.map(stage, firsts))
        list(ex.map(stage, [j for j in evals if j not in firsts]))
    info = {"command": "python benchmarks/realdata/full_run.py " + " ".join(sys.argv[1:]), "commit": commit,
            "machine": machine(), "params": "WORKDIR/<arm>/params_all.yaml (see benchmarks/realdata/full_run.py ARMS)"}
    out = summary_entries(w, walls, info)
    out["_run"] = {"wall_s_total": round(time.time() - t_start), "jobs": a.jobs, "threads_per_job": threads,
                   "smoke": a.smoke, "stage_wall_s": walls, **info}
    (w / "summary.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v["value"] for k, v in out.items() if k != "_run"}, indent=1))
    print(f"total wall {out['_run']['wall_s_total']} s")
    if a.record:
        from summary import load, save, write_readme

        s = load()
        s.update({f"{k}@full": v for k, v in out.items() if k != "_run"})
        save(s)
        write_readme()


if __name__ == "__main__":
    main()
