#!/usr/bin/env bash
# Real MNIST-M conditional generation on a CPU machine: the digit classifier, then ACGAN and conditional DDPM
# (configs/real_cond_cpu.yaml), trained, sampled in the course format and scored, as the pipeline's own stage
# scripts in a scratch copy of the project (two trainings at a time, 1 thread each).
# Usage: bash benchmarks/realdata/cpu_real_cond.sh [WORKDIR]   (needs ../shared/data)
set -euo pipefail
source "$(dirname "$0")/../tools/scratch_env.sh" configs/real_cond_cpu.yaml "${1:-/tmp/genda_real_cond}"
python stages/train_classifier.py > logs_classifier.txt 2>&1 &
python stages/train_cond.py ddpm > logs_ddpm.txt 2>&1 &
wait %1
python stages/train_cond.py acgan > logs_acgan.txt 2>&1
wait
for g in acgan ddpm; do
  python stages/sample_cond.py $g >> logs_$g.txt 2>&1 && python stages/evaluate_cond.py $g >> logs_$g.txt 2>&1
  tail -1 logs_$g.txt
done
