#!/usr/bin/env bash
# One face GAN of the embedded default (params.yaml face_gans.NAME) trained, sampled and scored by the pipeline's
# own stage scripts in a scratch copy of the project, with KEY=VALUE overrides of params.yaml (dotted keys, YAML
# values), e.g. seed=1 face_gans.dcgan.compute='{precision: bf16}'. One thread. Prints the evaluation line.
# Usage: bash benchmarks/ab/face_ab_embedded.sh NAME WORKDIR [KEY=VALUE ...]
# Results: benchmarks/results/ab_precision_faces_embedded.json (compute arms of Methods A and B)
set -euo pipefail
NAME=$1; WORK=$2; shift 2
source "$(dirname "$0")/../tools/scratch_env.sh" params.yaml "$WORK"
# this method only (its params.yaml entry, as JSON = YAML), then the overrides
entry=$(python -c "import json, sys, yaml; print(json.dumps(yaml.safe_load(open('params.yaml'))['face_gans'][sys.argv[1]]))" "$NAME")
params_run params.yaml "face_gans={\"$NAME\": $entry}" "$@"
{ python stages/train_gan.py "$NAME" && python stages/sample_gan.py "$NAME" && python stages/evaluate_gan.py "$NAME"; } \
  > "logs_$NAME.txt" 2>&1
tail -1 "logs_$NAME.txt"
