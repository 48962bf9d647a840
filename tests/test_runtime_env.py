"""The prediction CLI (`python -m genda.da.predict`), the device a stage picks (`GENDA_DEVICE`) and the threads it
pins (`GENDA_THREADS` / `OMP_NUM_THREADS` / default): issue 32 item 5.  Where the environment matters the check
runs in a fresh interpreter (threads are pinned before torch is imported)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import real_params
from genda.errors import ConfigError


def python(code: str, **env: str | None) -> subprocess.CompletedProcess:
    """`python -c code` with the test's environment minus the genda/OpenMP thread and device variables, plus `env`
    (a None value leaves the variable unset)."""
    e = {k: v for k, v in os.environ.items()
         if k not in ("GENDA_DEVICE", "GENDA_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GENDA_WARM",
                      "GENDA_NPROC")}
    e.update({k: v for k, v in env.items() if v is not None})
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, timeout=120)


# ----------------------------------------------------------------------------- GENDA_DEVICE
DEVICE = "from genda.runtime.device import get_device; print('device', get_device())"


def test_device_cpu_and_auto():
    r = python(DEVICE, GENDA_DEVICE="cpu")
    assert r.returncode == 0 and r.stdout.split() == ["device", "cpu"], r.stderr[-2000:]
    want = "cuda" if torch.cuda.is_available() else "cpu"
    for env in ({"GENDA_DEVICE": "auto"}, {}):  # auto, also when unset (the default)
        r = python(DEVICE, **env)
        assert r.returncode == 0 and r.stdout.split() == ["device", want], (env, r.stderr[-2000:])


def test_device_bad_value_fails_naming_it():
    r = python(DEVICE, GENDA_DEVICE="gpu0")
    assert r.returncode != 0 and "device" not in r.stdout.split()
    assert "gpu0" in r.stderr


STAGE = ("from genda.runtime import stage\n"
         "def main():\n"
         "    from genda.runtime.device import get_device\n"
         "    print('device', get_device())\n"
         "stage.run(main)\n")


def test_device_bad_value_in_a_stage_is_a_one_line_user_error():
    r = python(STAGE, GENDA_DEVICE="gpu0")
    assert r.returncode == 2 and "genda: error" in r.stderr and "gpu0" in r.stderr
    assert "Traceback" not in r.stderr and "valid: auto, cpu, cuda, cuda:N" in r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_device_cuda_without_cuda_is_a_one_line_user_error():
    r = python(STAGE, GENDA_DEVICE="cuda")
    assert r.returncode == 2 and "no CUDA device" in r.stderr and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- threads
THREADS = ("import os, sys\n"
           "from genda.runtime.threads import pin_threads_env, thread_count\n"
           "pin_threads_env()\n"
           "assert 'torch' not in sys.modules\n"          # pinned before torch loads, as a stage does
           "import torch\n"
           "from genda.runtime.device import get_device\n"
           "get_device()\n"
           "print(thread_count(), os.environ.get('OMP_NUM_THREADS'), os.environ.get('MKL_NUM_THREADS'),"
           " torch.get_num_threads())\n")


@pytest.mark.parametrize("env, want", [
    ({"GENDA_THREADS": "3", "OMP_NUM_THREADS": "1"}, "3 3 3 3"),   # GENDA_THREADS wins over OMP_NUM_THREADS
    ({"OMP_NUM_THREADS": "1"}, "1 1 1 1"),                         # else OMP_NUM_THREADS
    ({"GENDA_THREADS": "", "OMP_NUM_THREADS": "3"}, "3 3 3 3"),    # an empty GENDA_THREADS is unset
    ({}, "2 2 2 2"),                                               # else 2, not the machine's core count
])
def test_thread_selection_pins_omp_mkl_and_torch(env, want):
    r = python(THREADS, **env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == want.split()


def test_thread_count_zero_means_torch_default_and_bad_values_are_named(monkeypatch):
    from genda.runtime.threads import pin_threads_env, thread_count

    for var in ("GENDA_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GENDA_THREADS", "0")
    assert thread_count() == 0
    pin_threads_env()  # 0: torch's own default, so nothing is pinned
    assert "OMP_NUM_THREADS" not in os.environ and "MKL_NUM_THREADS" not in os.environ
    monkeypatch.setenv("GENDA_THREADS", "two")
    with pytest.raises(ConfigError, match="GENDA_THREADS='two'"):
        thread_count()
    monkeypatch.delenv("GENDA_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "1.5")
    with pytest.raises(ConfigError, match="OMP_NUM_THREADS='1.5'"):
        thread_count()


def test_bad_thread_count_in_a_stage_is_a_one_line_user_error():
    r = python(STAGE, GENDA_THREADS="two", GENDA_DEVICE="cpu")
    assert r.returncode == 2 and "genda: error: GENDA_THREADS='two'" in r.stderr
    assert "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- python -m genda.da.predict
@pytest.fixture(scope="module")
def model_and_digits(tmp_path_factory):
    """A target-only network trained 30 steps on embedded USPS digits (~70 % on its test split: the predictions
    vary over the classes), and those test digits."""
    from genda.data.embedded import embedded_digits
    from genda.da.train import train_da

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        d = tmp_path_factory.mktemp("predict")
        xtr, ytr, xte, yte, _ = embedded_digits("usps", size=28, seed=0)
        data = {"x_train": xtr[:192], "y_train": ytr[:192], "x_test": xte[:96], "y_test": yte[:96]}
        da = {k: v for k, v in real_params()["da"].items() if k not in ("methods", "compute")}
        da.update(steps=30, batch_size=32, checkpoint_every=1000, log_every=10, eval_every=0)
        train_da("target_only", {}, da, data, data, seed=0, device=torch.device("cpu"), ckpt_dir=d / "ck",
                 out_model=d / "model.pt", progress=False, compute={"precision": "fp32", "channels_last": False})
    finally:
        torch.set_num_threads(n)
    return d / "model.pt", data


def _predict(model_path: Path, x: torch.Tensor) -> list[int]:
    from genda.da.train import load_da_model
    from genda.data.tensors import predict_labels

    model = load_da_model(model_path, torch.device("cpu"))
    return predict_labels(model, x, torch.device("cpu"), head="classify").tolist()


def test_predict_cli_writes_one_sorted_row_per_image(model_and_digits, tmp_path):
    model, data = model_and_digits
    x = data["x_test"][:12]
    labels = _predict(model, x)
    assert len(set(labels)) >= 4, f"a test that cannot tell the images apart proves little: {labels}"
    folder = tmp_path / "images"
    folder.mkdir()
    expect: dict[str, torch.Tensor] = {}
    arr = lambda t: t.permute(1, 2, 0).numpy()  # noqa: E731  [3,H,W] uint8 -> [H,W,3]
    # written in reverse name order: the CSV follows the sorted names, not the directory's order
    for i in reversed(range(8)):
        name = f"d{i:02d}.png"
        Image.fromarray(arr(x[i])).save(folder / name)  # lossless, at the training size
        expect[name] = x[i]
    grey = x[8].float().mean(0).round().to(torch.uint8)  # a grey PNG: one channel, repeated to RGB
    Image.fromarray(grey.numpy(), mode="L").save(folder / "e_grey.png")
    expect["e_grey.png"] = grey.expand(3, -1, -1)
    big = Image.fromarray(arr(x[9])).resize((56, 56), Image.NEAREST)  # another size: resized to 28x28
    big.save(folder / "f_big.PNG")
    expect["f_big.PNG"] = torch.from_numpy(np.array(big.resize((28, 28), Image.BILINEAR))).permute(2, 0, 1)
    Image.fromarray(arr(x[10])).convert("RGBA").save(folder / "g_alpha.png")  # RGBA: the alpha is dropped
    expect["g_alpha.png"] = x[10]
    (folder / "notes.txt").write_text("not an image")

    out = tmp_path / "out" / "pred.csv"
    env = {**os.environ, "GENDA_DEVICE": "cpu", "GENDA_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "genda.da.predict", str(model), str(folder), str(out)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == f"wrote {len(expect)} predictions to {out}"
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["image_name", "label"]
    names = sorted(expect)
    assert [row[0] for row in rows[1:]] == names
    want = _predict(model, torch.stack([expect[n].contiguous() for n in names]))
    assert [int(row[1]) for row in rows[1:]] == want
    # the lossless PNGs get exactly the labels of the tensors they were written from
    assert want[:8] == labels[:8]


@pytest.mark.parametrize("case", ["missing folder", "no images", "corrupt image", "missing model"])
def test_predict_cli_user_errors_exit_2_with_one_line(model_and_digits, tmp_path, capsys, case):
    from genda.da import predict

    model, data = model_and_digits
    folder = tmp_path / "images"
    folder.mkdir()
    if case == "missing folder":
        folder, want = tmp_path / "nowhere", f"image folder not found: {tmp_path / 'nowhere'}"
    elif case == "no images":
        (folder / "a.txt").write_text("x")
        want = f"no images (.bmp, .jpeg, .jpg, .png) in {folder}"
    elif case == "corrupt image":
        Image.fromarray(data["x_test"][0].permute(1, 2, 0).numpy()).save(folder / "a.png")
        (folder / "b.png").write_bytes(b"\x89PNG not really")
        want = f"cannot read image {folder / 'b.png'}"
    else:
        Image.fromarray(data["x_test"][0].permute(1, 2, 0).numpy()).save(folder / "a.png")
        model, want = tmp_path / "none.pt", f"checkpoint not found: {tmp_path / 'none.pt'}"
    out = tmp_path / "pred.csv"
    with pytest.MonkeyPatch.context() as m:
        m.setenv("GENDA_DEVICE", "cpu")
        with pytest.raises(SystemExit) as e:
            predict.main([str(model), str(folder), str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"genda: error: {want}") and err.count("\n") == 1, err
    assert not out.exists()
