"""The benchmark shell scripts run on a fresh machine: only tools every Debian has (no rsync)."""
import os
import subprocess
from pathlib import Path

import yaml

from conftest import ROOT, VENV_BIN, real_params, shrink


def test_no_script_needs_rsync():
    paths = sorted((ROOT / "benchmarks").rglob("*.sh"))
    assert len(paths) >= 8, paths
    for path in paths:
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
    script = f'set -e; source "{ROOT}/benchmarks/tools/scratch_env.sh" "{params}" "{work}"; echo "PWD=$PWD"'
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


def test_face_rate_calibration_rule_and_patch_shuffle():
    """The detector-setting rule: most real faces found among the settings with no more false positives than the
    baseline (+ one standard error); the negatives' patch shuffle only moves whole patches."""
    import sys

    import torch

    sys.path.insert(0, str(ROOT / "benchmarks/ab"))
    from face_rate_calibration import BASELINE, choose, shuffled_patches

    real, up, shuf, noise = ("CelebA aligned, centre 64x64 crop", "CelebA upside down",
                             "CelebA 4x4 patches shuffled", "uniform noise")
    rates = {BASELINE: {real: 0.87, up: 0.07, shuf: 0.03, noise: 0.0},
             (0.125, 3): {real: 0.95, up: 0.31, shuf: 0.03, noise: 0.0},     # more faces, far more false positives
             (0.0625, 6): {real: 0.91, up: 0.08, shuf: 0.02, noise: 0.0},    # within one s.e. of the baseline
             (0.0625, 5): {real: 0.92, up: 0.12, shuf: 0.02, noise: 0.0}}    # 0.12 > 0.07 + s.e. (0.015 at n=300)
    assert choose(rates, 300) == (0.0625, 6)
    rates[(0.0625, 6)][noise] = 0.02  # noise must stay at the baseline's 0 (+ the s.e. of 1 image in 300)
    assert choose(rates, 300) == BASELINE

    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.int64).reshape(2, 3, 8, 8)
    y = shuffled_patches(x, torch.Generator().manual_seed(0), grid=4)
    assert y.shape == x.shape and not torch.equal(x, y)
    patches = lambda t: {tuple(t[i, :, r:r + 2, c:c + 2].flatten().tolist())  # noqa: E731
                         for i in range(2) for r in range(0, 8, 2) for c in range(0, 8, 2)}
    assert patches(x) == patches(y)


def test_face_detector_defaults_are_the_committed_calibrations_choice():
    """genda.metrics.facedetect's BORDER / MIN_NEIGHBORS must be what benchmarks/ab/face_rate_calibration.py chose on
    the real data (its committed JSON): changing them means rerunning the calibration."""
    import json

    from genda.metrics.facedetect import BORDER, MIN_NEIGHBORS

    cal = json.loads((ROOT / "benchmarks/results/face_rate_calibration.json").read_text())
    assert cal["chosen"] == cal["genda_default"] == f"border={BORDER:.4g} minNeighbors={MIN_NEIGHBORS}"
    chosen = cal["rates"][cal["chosen"]]
    base = cal["rates"][cal["baseline"].split(" (")[0]]
    assert chosen["CelebA aligned, centre 64x64 crop"] > base["CelebA aligned, centre 64x64 crop"]


def test_repro_utilisation_splits_cpu_samples_at_the_stage_lines(tmp_path):
    """Per stage: wall between two 'Running stage' lines, busy share of the /proc/stat samples in it, and the idle
    cores as wall seconds; stamped lines come from benchmarks/tools/timestamp.sh."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks/speed"))
    from repro_utilisation import analyse

    log = tmp_path / "repro.log"
    log.write_text("    0.0 GENDA_WARM=1 dvc repro\n    1.0 Running stage 'prepare':\n    1.0 > python x.py\n"
                   "    3.0 Running stage 'train_cond@ddpm':\n    5.9 some output\n    6.0 Updating lock file\n")
    cpu = tmp_path / "cpu.log"  # seconds since the start, idle + iowait jiffies, all jiffies (2 cores x 100 Hz)
    cpu.write_text("".join(f"{t}.0 {idle} 200\n" for t, idle in [(1, 200), (2, 100), (3, 100), (4, 0), (5, 0),
                                                                   (6, 0), (7, 200)]))
    res = analyse(log, cpu)
    by = {r["stage"]: r for r in res["stages"]}
    assert by["prepare"] == {"stage": "prepare", "wall_s": 2.0, "busy": 0.5, "idle_core_wall_s": 1.0}
    assert by["train_cond@ddpm"] == {"stage": "train_cond@ddpm", "wall_s": 3.0, "busy": 1.0, "idle_core_wall_s": 0.0}
    assert [r["stage"] for r in res["stages"]] == ["train_cond@ddpm", "prepare"]  # longest first
    assert (res["stages_run"], res["stage_wall_s"], res["idle_core_wall_s"], res["busy_share"]) == (2, 5.0, 1.0, 0.8)


def test_repro_utilisation_record_runs_the_command_beside_the_sampler(tmp_path):
    """record: the command's output stamped by benchmarks/tools/timestamp.sh, its exit status passed on, one /proc/stat
    sample a second (machine-wide, so the busy shares are not asserted here: other tests share the cores).

    No sleeps and no wall-time window: the command moves on when it sees events -- its stage line stamped in the
    log, then two more sampler lines (so at least one sampler second, >= 1 s, lies between a stamp and the next) --
    so a starved machine makes it slower, never wrong."""
    import subprocess
    import sys
    import time

    log, cpu = tmp_path / "repro.log", tmp_path / "cpu.log"
    script = f"""
wait_for() {{  # poll a condition (a command) every 0.05 s; give up after 120 s
  for _ in $(seq 2400); do "$@" && return 0; sleep 0.05; done
  echo "timed out waiting for: $*" >&2; exit 9
}}
samples() {{ if [ -f '{cpu}' ]; then wc -l < '{cpu}'; else echo 0; fi; }}
at_least() {{ [ "$(samples)" -ge "$1" ]; }}
stage() {{
  echo "Running stage '$1':"
  wait_for grep -q "Running stage '$1'" '{log}'      # the line is stamped ...
  wait_for at_least $(( $(samples) + 2 ))            # ... then >= 1 s of sampler ticks
}}
stage a; stage b; exit 3
"""
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks/speed/repro_utilisation.py"), "record", "--log", str(log),
                        "--cpu", str(cpu), "--", "bash", "-c", script], timeout=600)
    elapsed = time.monotonic() - t0
    assert r.returncode == 3, log.read_text()[-2000:]
    sys.path.insert(0, str(ROOT / "benchmarks/speed"))
    from repro_utilisation import analyse

    res = analyse(log, cpu)
    walls = {s["stage"]: s["wall_s"] for s in res["stages"]}
    # each stage held >= 1 s between its stamp and the next (or the end); stamps are cut to 0.1 s
    assert set(walls) == {"a", "b"} and all(w >= 0.9 for w in walls.values()), walls
    # and the stamps are seconds of this run: together no longer than the run as timed from outside
    assert sum(walls.values()) <= res["total_wall_s"] + 1e-6 <= elapsed + 0.1, (walls, res["total_wall_s"], elapsed)
    assert len(cpu.read_text().splitlines()) >= 4 and all(0.0 <= s["busy"] <= 1.0 for s in res["stages"])
