"""The benchmark shell scripts run on a fresh machine: only tools every Debian has (no rsync)."""
import os
import subprocess
from pathlib import Path

import yaml

from conftest import ROOT, VENV_BIN, real_params, shrink


def test_no_script_needs_rsync():
    for path in (ROOT / "benchmarks").glob("*.sh"):
        code = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
        assert "rsync" not in code, f"{path.name} calls rsync, which a fresh machine does not have"


def test_scratch_env_copies_the_project_and_prepares_data_without_rsync(tmp_path):
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "rsync").write_text("#!/bin/sh\necho 'rsync: command not found' >&2\nexit 127\n")
    (shim / "rsync").chmod(0o755)
    p = shrink(real_params())
    p["data"].update(faces=False)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(p))
    work = tmp_path / "work"
    script = f'set -e; source "{ROOT}/benchmarks/scratch_env.sh" "{params}" "{work}"; echo "PWD=$PWD"'
    env = {**os.environ, "PATH": f"{shim}:{VENV_BIN}:{os.environ['PATH']}", "GENDA_MLFLOW": "0"}
    r = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"PWD={work}" in r.stdout
    assert (work / "dvc.yaml").exists() and (work / "stages/train_da.py").exists()
    for absent in (".git", ".venv", "models", "checkpoints", "metrics", "dvc.lock", "mlflow.db"):
        assert not (work / absent).exists(), f"{absent} copied into the scratch project"
    manifest = (work / "data/prepared/manifest.json").read_text()
    assert '"mnistm"' in manifest and '"usps"' in manifest
    assert sorted(p.name for p in (work / "data/prepared/digits").iterdir()) == ["mnistm.pt", "usps.pt"]
