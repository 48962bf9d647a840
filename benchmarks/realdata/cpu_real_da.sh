#!/usr/bin/env bash
# Real-data domain adaptation on a CPU machine: one source-target pair (default MNIST-M -> USPS), every
# setting of configs/real_da_cpu.yaml (or of SETTINGS="a b ..."), run as the pipeline's own stage scripts in a
# scratch copy of the project (2 settings at a time, 1 thread each).
# Usage: bash benchmarks/realdata/cpu_real_da.sh [WORKDIR] [PAIR]   e.g. PAIR=mnist-mnistm   (needs ../shared/data)
set -euo pipefail
PAIR=${2:-mnistm-usps}
W=${1:-/tmp/genda_real_da}
mkdir -p "$W"
# the config with this pair's two domains and the pair itself (and SETTINGS, when given)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
"$ROOT/.venv/bin/python" - "$PAIR" "$W/params_real_da.yaml" "${SETTINGS:-}" "$ROOT/configs/real_da_cpu.yaml" <<'PY'
import sys, yaml
pair, out, settings, base = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4]
from genda.config import read_yaml  # configs/ holds overlays of params.yaml
p = read_yaml(base)
p["data"]["domains"] = pair.split("-")
p["da"]["pairs"] = [pair]
if settings:
    p["da"]["settings"] = settings
yaml.safe_dump(p, open(out, "w"), sort_keys=False)
PY
source "$(dirname "$0")/../tools/scratch_env.sh" "$W/params_real_da.yaml" "$W"
export PAIR
python -c "import yaml;print(' '.join(yaml.safe_load(open('$GENDA_PARAMS'))['da']['settings']))" | tr ' ' '\n' \
  | xargs -P 2 -I{} sh -c \
  'python stages/train_da.py $PAIR {} > logs_{}.txt 2>&1; tail -1 logs_{}.txt'
python stages/evaluate_da.py "$PAIR"   # -> metrics/da/$PAIR.json
python stages/tsne.py "$PAIR"
