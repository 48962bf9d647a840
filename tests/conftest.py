"""Shared fixtures: a throw-away copy of the project with the real params shrunk to CPU-seconds."""
from __future__ import annotations

import atexit
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GENDA_SHARED_DATA", ROOT.parent / "shared" / "data"))
VENV_BIN = Path(sys.executable).parent

# Stage processes started by `run` (dvc repro ...) use one warm fork server per test process (genda.runtime.forkserver), as
# `make repro` does; it is stopped when the tests end.  GENDA_WARM=0 in the environment runs them cold.
WARM_DIR = tempfile.mkdtemp(prefix="genda-warm-tests-")


def _stop_warm_server() -> None:
    env = {**os.environ, "GENDA_WARM_DIR": WARM_DIR}
    subprocess.run([sys.executable, "-m", "genda.runtime.forkserver", "stop"], env=env, capture_output=True, timeout=60)
    shutil.rmtree(WARM_DIR, ignore_errors=True)


atexit.register(_stop_warm_server)


def real_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def catalogue_params() -> dict:
    """params.yaml running every face method: the default's entries, then the recipes of the ones the default
    leaves out (issue 34) from the real profile's overlay (configs/real.yaml), without their CelebA-only keys
    (``attribute``, ``tag_groups``: the embedded faces have their own attributes; ``tag_balance`` balances 'Bright')."""
    from genda.config.profiles import plain, read_overlay

    p = real_params()
    over = plain(read_overlay(ROOT / "configs/real.yaml")[0])
    for section in ("face_gans", "cond_gens"):
        extra = {k: copy.deepcopy(v) for k, v in over[section].items() if k not in p[section]}
        for entry in extra.values():
            for key in ("attribute", "tag_groups"):
                (entry or {}).pop(key, None)
            if "tag_balance" in (entry or {}):  # a CelebA group: balance an embedded one (a 2-way group per attribute)
                entry["tag_balance"] = "Bright"
        p[section] = {**p[section], **extra}
    return p


def shrink(params: dict) -> dict:
    """The real params.yaml, shrunk (CPU, few steps, tiny nets) but with every section intact."""
    p = copy.deepcopy(params)
    p["data"].update(max_train=192, max_test=96, max_faces=160, domains=["mnistm", "usps"])
    gan_tiny = dict(steps=4, batch_size=16, ngf=8, ndf=8, checkpoint_every=2, log_every=1)
    p["gan"].update(gan_tiny)
    for entry in p["face_gans"].values():
        if entry:
            entry.update({k: v for k, v in gan_tiny.items() if k in entry})
    p["sample"].update(n_images=40, grid=16)
    p["evaluate"].update(kid_subset_size=20, batch_size=20)
    p["da"].update(pairs=["mnistm-usps"], steps=6, batch_size=32, checkpoint_every=3, log_every=2, tsne_points=40)
    p["classifier"].update(steps=150, batch_size=32, width=16, lr=3e-3, checkpoint_every=100, log_every=50,
                           attr_steps=10)
    tiny = dict(steps=4, batch_size=8, checkpoint_every=2, log_every=1, z_dim=16, ngf=8, ndf=8, embed_dim=16,
                n_feat=16, T=20)
    p["cond"].update(tiny)
    for entry in p["cond_gens"].values():  # per-entry overrides of a shrunk key are shrunk too
        entry.update({k: v for k, v in tiny.items() if k in entry})
    p["cond_sample"].update(n_per_class=3, n_images=12, grid_per_class=2, batch_size=50, ddim_steps=5)
    if "style" in p:  # style transfer (tests/test_style.py): a few steps at 32x32, evaluated at 64x64
        p["style"].update(steps=4, batch_size=2, image_size=32, photo_crops=4, style_size=32, ngf=8, n_blocks=1,
                          checkpoint_every=2, log_every=1, eval_size=64, n_faces=1, speed_images=2, gatys_steps=2)
    return p


def run(cmd: list[str] | str, cwd: Path, check: bool = True, env: dict | None = None, timeout: int = 900):
    e = dict(os.environ)
    e["PATH"] = f"{VENV_BIN}{os.pathsep}{e.get('PATH', '')}"
    e.setdefault("GENDA_DEVICE", "cpu")
    e.setdefault("GENDA_WARM", "1")
    e.setdefault("GENDA_WARM_DIR", WARM_DIR)
    e.update(env or {})
    r = subprocess.run(cmd, cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout,
                       shell=isinstance(cmd, str))
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed ({r.returncode}):\nSTDOUT:\n{r.stdout[-4000:]}\nSTDERR:\n{r.stderr[-4000:]}")
    return r


def make_project(dest: Path, params: dict, *, git: bool = True) -> Path:
    """Copy the pipeline (dvc.yaml, stages/, data/raw, configs/real.yaml) into `dest` with `params`; git+dvc init it."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(ROOT / "stages", dest / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "data" / "raw", dest / "data" / "raw")
    # the report names the real profile's face methods a run leaves out (a dep of the report stage)
    (dest / "configs").mkdir(exist_ok=True)
    shutil.copy(ROOT / "configs" / "real.yaml", dest / "configs" / "real.yaml")
    # stages depend on library folders by path: link the real ones so DVC can hash them
    (dest / "src").mkdir(exist_ok=True)
    shutil.copytree(ROOT / "src" / "genda", dest / "src" / "genda", ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if git:
        run(["git", "init", "-q", "-b", "main"], dest)
        run(["git", "config", "user.email", "ci@genda.invalid"], dest)
        run(["git", "config", "user.name", "genda-ci"], dest)
        run(["dvc", "init", "-q"], dest)
        run(["dvc", "config", "core.analytics", "false"], dest)
        run(["git", "add", "-A"], dest)
        run(["git", "commit", "-qm", "init"], dest)
    return dest


_PREPARED: dict[str, Path] = {}


def prepared_project(dest: Path, params: dict) -> Path:
    """make_project(git=False) + `stages/prepare.py`, with the prepared data of equal (seed, data) params made
    once per test process and copied afterwards (prepare costs ~9 s of CPU; the data are a pure function of
    those params, see tests/test_data_sources.py)."""
    make_project(dest, params, git=False)
    key = json.dumps([params.get("seed"), params["data"]], sort_keys=True)
    if key not in _PREPARED:
        run([sys.executable, "stages/prepare.py"], dest, env={"GENDA_MLFLOW": "0"})
        cache = Path(tempfile.mkdtemp(prefix="genda-prepared-")) / "prepared"
        atexit.register(shutil.rmtree, cache.parent, True)
        shutil.copytree(dest / "data" / "prepared", cache)
        _PREPARED[key] = cache
    else:
        shutil.copytree(_PREPARED[key], dest / "data" / "prepared", dirs_exist_ok=True)
    return dest


@pytest.fixture
def tiny_params() -> dict:
    return shrink(real_params())


def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """Tiny models: one intra-op thread is faster and steadier on a busy 2-core machine."""
    yield from _one_torch_thread()


@pytest.fixture(scope="module")
def one_thread_module():
    """:func:`one_thread` for a whole test module, its module-scoped fixtures included (use it autouse)."""
    yield from _one_torch_thread()
