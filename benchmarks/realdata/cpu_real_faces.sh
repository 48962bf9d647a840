#!/usr/bin/env bash
# Real 64x64 CelebA faces on a CPU machine: every face GAN of configs/real_faces_cpu.yaml trained, sampled
# (1000 fixed-seed faces) and scored (FID / IS / KID, Haar-cascade face-detection rate) with the pipeline's
# own stage scripts in a scratch copy of the project (2 methods at a time, 1 thread each).
# Usage: bash benchmarks/realdata/cpu_real_faces.sh [WORKDIR [KEY=VALUE ...]]   (needs ../shared/data)
#   KEY=VALUE overrides of the config, e.g. compute.precision=bf16 (written to WORKDIR/params_run.yaml)
set -euo pipefail
source "$(dirname "$0")/../tools/scratch_env.sh" configs/real_faces_cpu.yaml "${1:-/tmp/genda_real_faces}"
shift || true
if [ $# -gt 0 ]; then params_run configs/real_faces_cpu.yaml "$@"; fi
methods=$(python -c "import yaml;print(' '.join(yaml.safe_load(open('$GENDA_PARAMS'))['face_gans']))")
echo "$methods" | tr ' ' '\n' | xargs -P 2 -I{} sh -c \
  'python stages/train_gan.py {} > logs_{}.txt 2>&1 && python stages/sample_gan.py {} >> logs_{}.txt 2>&1 \
   && python stages/evaluate_gan.py {} >> logs_{}.txt 2>&1; tail -1 logs_{}.txt'
