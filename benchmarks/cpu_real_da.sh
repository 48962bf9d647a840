#!/usr/bin/env bash
# Real-data domain adaptation on a CPU machine: MNIST-M -> USPS, every setting of configs/real_da_cpu.yaml,
# run as the pipeline's own stage scripts in a scratch copy of the project (2 settings at a time, 1 thread each).
# Usage: bash benchmarks/cpu_real_da.sh [WORKDIR]   (needs ../shared/data)
set -euo pipefail
source "$(dirname "$0")/scratch_env.sh" configs/real_da_cpu.yaml "${1:-/tmp/genda_real_da}"
settings=$(python -c "import yaml;print(' '.join(yaml.safe_load(open('$GENDA_PARAMS'))['da']['settings']))")
echo "$settings" | tr ' ' '\n' | xargs -P 2 -I{} sh -c \
  'python stages/train_da.py mnistm-usps {} > logs_{}.txt 2>&1 && python stages/evaluate_da.py mnistm-usps {} >> logs_{}.txt 2>&1; tail -1 logs_{}.txt'
python stages/tsne.py mnistm-usps
