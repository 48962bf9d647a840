#!/usr/bin/env bash
# Real MNIST-M conditional DDPM on a CPU machine (configs/real_cond_cpu.yaml: FiLMUnet + v, 15,000 x 64, DDIM 25,
# guidance w 3): the digit classifier (1 thread, beside it) and the DDPM, trained, sampled in the course format and
# scored, as the pipeline's own stage scripts in a scratch copy. ~70 min on one core of the 2026-12-01 Xeon.
# Usage: bash benchmarks/realdata/cpu_real_ddpm.sh [WORKDIR]   (needs ../shared/data)
set -euo pipefail
source "$(dirname "$0")/../tools/scratch_env.sh" configs/real_cond_cpu.yaml "${1:-/tmp/genda_real_ddpm}"
python stages/train_classifier.py > logs_classifier.txt 2>&1 &
python stages/train_cond.py ddpm > logs_ddpm.txt 2>&1
wait
python stages/sample_cond.py ddpm >> logs_ddpm.txt 2>&1 && python stages/evaluate_cond.py ddpm >> logs_ddpm.txt 2>&1
tail -1 logs_ddpm.txt
