#!/usr/bin/env bash
# One face GAN of the embedded default (params.yaml face_gans.NAME) trained, sampled and scored by the pipeline's
# own stage scripts in a scratch copy of the project, with KEY=VALUE overrides of params.yaml (dotted keys, YAML
# values), e.g. seed=1 face_gans.dcgan.compute='{precision: bf16}'. One thread. Prints the evaluation line.
# Usage: bash benchmarks/face_ab_embedded.sh NAME WORKDIR [KEY=VALUE ...]
# Results: benchmarks/results/ab_precision_faces_embedded.json (compute arms of Methods A and B)
set -euo pipefail
NAME=$1; WORK=$2; shift 2
source "$(dirname "$0")/scratch_env.sh" params.yaml "$WORK"
python - "$NAME" "$@" <<'PY'
import sys, yaml
sys.path.insert(0, "benchmarks")
from da_runs import set_key
name, overrides = sys.argv[1], sys.argv[2:]
p = yaml.safe_load(open("params.yaml"))
p["face_gans"] = {name: p["face_gans"][name]}  # this method only
for o in overrides:
    k, _, v = o.partition("=")
    set_key(p, k, yaml.safe_load(v))
yaml.safe_dump(p, open("params_run.yaml", "w"), sort_keys=False)
PY
export GENDA_PARAMS=params_run.yaml
{ python stages/train_gan.py "$NAME" && python stages/sample_gan.py "$NAME" && python stages/evaluate_gan.py "$NAME"; } \
  > "logs_$NAME.txt" 2>&1
tail -1 "logs_$NAME.txt"
