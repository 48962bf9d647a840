# Sourced by the cpu_real_*.sh scripts: copy the project into a scratch WORKDIR (no .git, .venv or prepared
# data), cd there and export the environment the pipeline's stage scripts read.
# Usage (from a script): source "$(dirname "$0")/../tools/scratch_env.sh" PARAMS_FILE WORKDIR
# Also defines params_run BASE [KEY=VALUE ...]: BASE with dotted-key overrides (YAML values) written to
# params_run.yaml in the workdir and exported as GENDA_PARAMS.
params_run() {
  python - "$@" <<'PY'
import sys, yaml
sys.path.insert(0, "benchmarks/realdata")
from da_runs import set_key
from genda.config import read_yaml  # a full params file or an overlay of configs/
p = read_yaml(sys.argv[1])
for o in sys.argv[2:]:
    k, _, v = o.partition("=")
    set_key(p, k, yaml.safe_load(v))
yaml.safe_dump(p, open("params_run.yaml", "w"), sort_keys=False)
PY
  export GENDA_PARAMS=params_run.yaml
}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
W=$2; mkdir -p "$W"
# tar, not rsync: tar is on every fresh machine (rsync is not installed by default)
# and none of the default run's outputs (models, checkpoints, metrics ...), the DVC cache or the real profile (real/):
# the scratch run makes its own
tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./.dvc/cache --exclude=./.dvc/tmp --exclude=./real \
  --exclude=./.carry --exclude=./data/prepared --exclude=./models \
  --exclude=./checkpoints --exclude=./samples --exclude=./features --exclude=./metrics --exclude=./plots \
  --exclude=./report --exclude=./mlflow.db --exclude=./mlflow.db.lock --exclude=./mlruns --exclude=./dvc.lock \
  -cf - . | tar -C "$W" -xf -
cd "$W"
# PYTHONPATH: the copy's src, not whatever checkout the .venv's editable install points at
export PYTHONPATH="$PWD/src" PATH="$SRC/.venv/bin:$PATH" GENDA_PARAMS=$1 GENDA_DEVICE=cpu GENDA_THREADS=1 GENDA_MLFLOW=${GENDA_MLFLOW:-1}
python stages/prepare.py
