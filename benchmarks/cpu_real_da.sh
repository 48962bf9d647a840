#!/usr/bin/env bash
# Real-data domain adaptation on a CPU machine: MNIST-M -> USPS, every setting of configs/real_da_cpu.yaml,
# run as the pipeline's own stage scripts in a scratch copy of the project (2 settings at a time, 1 thread each).
# Usage: bash benchmarks/cpu_real_da.sh [WORKDIR]   (needs ../shared/data)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
W=${1:-/tmp/genda_real_da}; mkdir -p "$W"
rsync -a --exclude .git --exclude .venv --exclude .carry --exclude data/prepared "$SRC"/ "$W"/
cd "$W"
export PATH="$SRC/.venv/bin:$PATH" GENDA_PARAMS=configs/real_da_cpu.yaml GENDA_DEVICE=cpu OMP_NUM_THREADS=1 \
       GENDA_MLFLOW=${GENDA_MLFLOW:-1}
python stages/prepare.py
settings=$(python -c "import yaml;print(' '.join(yaml.safe_load(open('$GENDA_PARAMS'))['da']['settings']))")
echo "$settings" | tr ' ' '\n' | xargs -P 2 -I{} sh -c \
  'python stages/train_da.py mnistm-usps {} > logs_{}.txt 2>&1 && python stages/evaluate_da.py mnistm-usps {} >> logs_{}.txt 2>&1; tail -1 logs_{}.txt'
python stages/tsne.py mnistm-usps
