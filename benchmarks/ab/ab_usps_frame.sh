#!/usr/bin/env bash
# A/B of data.usps_frame (fill | mnist) on real MNIST-M -> USPS, several seeds, through the pipeline's own
# stage scripts in scratch copies of the project (one per framing), 2 trainings at a time, 1 thread each.
# Recipe: configs/real_da_cpu.yaml (2,500 steps x 64, SGD 0.01 annealed). Trainings checkpoint, so rerunning
# the same command after an interruption continues where it stopped; finished seeds are not retrained.
# Usage: bash benchmarks/ab/ab_usps_frame.sh [WORKDIR]   (env: SETTINGS="source_only dann", SEEDS="0 1 2",
#        FRAMES="fill mnist"; needs ../shared/data)   Results: WORKDIR/<frame>/metrics/da/mnistm-usps.json
set -euo pipefail
W=${1:-/tmp/genda_ab_usps_frame}
SETTINGS=${SETTINGS:-source_only dann}
SEEDS=${SEEDS:-0 1 2}
FRAMES=${FRAMES:-fill mnist}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY="$ROOT/.venv/bin/python"
mkdir -p "$W"
for F in $FRAMES; do
  # one params file per seed (so seeds train in parallel) and one with every seed (for evaluate_da)
  "$PY" - "$ROOT/configs/real_da_cpu.yaml" "$W/$F" "$F" "$SETTINGS" "$SEEDS" <<'PY'
import sys, yaml, pathlib
base, out, frame, settings, seeds = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4].split(), [int(s) for s in sys.argv[5].split()]
out.mkdir(parents=True, exist_ok=True)
from genda.config import read_yaml  # configs/ holds overlays of params.yaml
p = read_yaml(base)
p["data"]["usps_frame"] = frame
p["data"]["root"] = str((pathlib.Path(base).parents[1] / p["data"]["root"]).resolve())  # relative to the project
p["da"].update(pairs=["mnistm-usps"], settings=settings, seeds=seeds)
yaml.safe_dump(p, open(out / "params_all.yaml", "w"), sort_keys=False)
for s in seeds:
    p["da"]["seeds"] = [s]
    yaml.safe_dump(p, open(out / f"params_seed{s}.yaml", "w"), sort_keys=False)
PY
  (source "$ROOT/benchmarks/tools/scratch_env.sh" "$W/$F/params_all.yaml" "$W/$F" > "$W/$F/prepare.log" 2>&1)
done
# seed-major order: every framing and setting gets seed 0 before any gets seed 1
export ROOT
for S in $SEEDS; do for F in $FRAMES; do for T in $SETTINGS; do echo "$F $T $S"; done; done; done \
  | xargs -P 2 -L 1 sh -c 'cd "$0/$1" && { [ ! -f "models/da/mnistm-usps/$2/seed$3.pt" ] || exit 0; } \
      && start=$(date +%s) \
      && PATH="$ROOT/.venv/bin:$PATH" GENDA_PARAMS="$0/$1/params_seed$3.yaml" GENDA_DEVICE=cpu GENDA_THREADS=1 \
         GENDA_MLFLOW=${GENDA_MLFLOW:-1} python stages/train_da.py mnistm-usps "$2" > "logs_$2_seed$3.txt" 2>&1 \
      && echo "$1 $2 seed$3: $(( $(date +%s) - start )) s" | tee -a "$0/wall_times.txt"' "$W"
for F in $FRAMES; do
  (cd "$W/$F" && PATH="$ROOT/.venv/bin:$PATH" GENDA_PARAMS="$W/$F/params_all.yaml" GENDA_DEVICE=cpu GENDA_THREADS=2 \
     python stages/evaluate_da.py mnistm-usps > evaluate.log 2>&1 && echo "$F:" && cat metrics/da/mnistm-usps.json)
done
