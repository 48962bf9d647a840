"""Style transfer (issue 35, genda.style): the Gram matrix and the CoMatch layer against hand computations, MSG-Net's
shapes, the loss network's named fallback (one warning), the params section's validation, kill-and-resume equivalence
of the trainer, and train_style -> stylize -> evaluate_style shrunk to seconds."""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from conftest import real_params, shrink
from genda.config import validate
from genda.errors import ConfigError
from genda.style.gram import gram_matrix
from genda.style.models.comatch import CoMatch
from genda.style.models.msgnet import MSGNet
from genda.style.vgg import load_loss_network

TINY = dict(styles=["pencil", "relief"], steps=80, batch_size=2, image_size=32, photo_crops=8, style_size=32, ngf=8,
            n_blocks=1, checkpoint_every=20, log_every=5, eval_size=64, n_faces=1, speed_images=2, gatys_steps=2,
            gatys_images=1, lr=5e-3)


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread_module):
    yield


def test_gram_matrix_matches_a_hand_computation():
    # one image, C = 2 channels, H x W = 1 x 2: Phi = [[1, 2], [3, 4]], Phi Phi^T = [[5, 11], [11, 25]], / (C H W = 4)
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    assert torch.equal(gram_matrix(f), torch.tensor([[[1.25, 2.75], [2.75, 6.25]]]))
    assert gram_matrix(torch.randn(3, 5, 4, 6)).shape == (3, 5, 5)


def test_comatch_matches_a_hand_computation():
    layer = CoMatch(2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[[1.0, 2.0], [0.0, 1.0]]]))
    layer.set_target(torch.tensor([[[1.0, 0.0], [3.0, 1.0]]]))
    # W G = [[1 + 6, 2], [3, 1]] = [[7, 2], [3, 1]];  (W G)^T = [[7, 3], [2, 1]]
    x = torch.tensor([[[[1.0, 0.0, 2.0]], [[0.0, 1.0, 1.0]]],     # Phi_0 = [[1, 0, 2], [0, 1, 1]]
                      [[[1.0, 1.0, 1.0]], [[2.0, 0.0, -1.0]]]])   # Phi_1 = [[1, 1, 1], [2, 0, -1]]
    out = layer(x)
    assert out.shape == x.shape == (2, 2, 1, 3)
    assert torch.equal(out[0, :, 0], torch.tensor([[7.0, 3.0, 17.0], [2.0, 1.0, 5.0]]))
    assert torch.equal(out[1, :, 0], torch.tensor([[13.0, 7.0, 4.0], [4.0, 2.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\[B, 2, 2\]"):
        layer.set_target(torch.zeros(1, 3, 3))


def test_msgnet_shapes_and_one_target_for_the_batch():
    torch.manual_seed(0)
    net = MSGNet(ngf=8, n_blocks=1)
    net.set_style(torch.rand(1, 3, 24, 24) * 2 - 1)
    assert net.comatch.target.shape == (1, 32, 32)  # 4 * ngf channels
    y = net(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert y.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="multiple of 8"):
        MSGNet(ngf=12)


def test_missing_weights_file_falls_back_with_exactly_one_warning_naming_it(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net, name = load_loss_network(tmp_path / "nope.pth", seed=3)
    assert name == "vgg16-random(seed=3)"
    assert len(caught) == 1 and "random-weight VGG-16" in str(caught[0].message) and "nope.pth" in str(caught[0].message)
    net2, _ = load_loss_network(tmp_path / "nope.pth", seed=3)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    feats = net(x)
    assert [f.shape[1:] for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)]
    assert all(torch.equal(a, b) for a, b in zip(feats, net2(x)))  # the seed fixes the weights
    # a weights file that is there is read (torchvision's key layout), named by its file, without a warning
    sd = {f"features.{k}": v for k, v in net.features.state_dict().items()}
    sd["classifier.0.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "vgg16-397923af.pth")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net3, name3 = load_loss_network(tmp_path / "vgg16-397923af.pth", seed=99)
    assert not caught and name3 == "vgg16-imagenet(vgg16-397923af.pth)"
    assert all(torch.equal(a, b) for a, b in zip(feats, net3(x)))


@pytest.mark.parametrize("key, value, message", [
    ("stlye_weight", 1.0, "unknown key 'style.stlye_weight' (did you mean 'style_weight'?)"),
    ("steps", "100", "'style.steps' = '100' has the wrong type; expected int"),
    ("styles", ["pencl"], "'style.styles[0]' = 'pencl' is not a valid choice; valid: pencil, cartoon, relief"),
    ("ngf", 12, "'style.ngf' = 12 must be a multiple of 8"),
    ("image_size", 66, "'style.image_size' = 66 must be a multiple of 4"),
])
def test_style_params_are_validated_naming_the_key(key, value, message):
    p = copy.deepcopy(real_params())
    p["style"][key] = value
    with pytest.raises(ConfigError) as e:
        validate(p, check_paths=False)
    assert message in str(e.value)


def test_a_missing_weights_path_is_no_params_error():
    p = copy.deepcopy(real_params())
    p["style"]["vgg_weights"] = "no/such/vgg16.pth"
    validate(p)


def _train(cfg, content, ckpt_dir, tracker=None):
    from genda.style.train import train_style

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, history, _ = train_style(cfg, content, seed=0, device=torch.device("cpu"), ckpt_dir=ckpt_dir,
                                        tracker=tracker, progress=False, compute={"precision": "fp32"})
    return model, history


def test_an_interrupted_training_resumes_to_the_same_weights(tmp_path):
    from genda.style.images import training_content

    cfg = {**real_params()["style"], **TINY, "steps": 6, "checkpoint_every": 3, "log_every": 1}
    faces = torch.randint(0, 256, (6, 3, 48, 48), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    content = training_content(faces, 4, 32, 0)
    full, hist = _train(cfg, content, tmp_path / "a")

    class Interrupt(Exception):
        pass

    class KillAtStep4:  # logging of step 4 happens after the step-3 checkpoint
        def log_metrics(self, metrics, step):
            if step == 4:
                raise Interrupt

    with pytest.raises(Interrupt):
        _train(cfg, content, tmp_path / "b", tracker=KillAtStep4())
    resumed, hist2 = _train(cfg, content, tmp_path / "b")
    assert hist2 == hist
    assert all(torch.equal(a, b) for a, b in zip(full.state_dict().values(), resumed.state_dict().values()))


def test_train_stylize_evaluate_through_the_stages(tmp_path):
    from test_method_stages import run_stage
    from genda.data.embedded import embedded_faces
    from genda.data.store import faces_path, save_prepared

    proj = tmp_path / "proj"
    proj.mkdir()
    p = shrink(real_params())
    p["style"].update(TINY)
    (proj / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    ftr, fte, atr, ate, names, desc = embedded_faces(size=64, seed=0)
    save_prepared({"x_train": ftr[:16].clone(), "x_test": fte[:4].clone(), "attrs_train": atr[:16].clone(),
                   "attrs_test": ate[:4].clone(), "attr_names": names, "description": desc}, faces_path(proj))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for script in ("train_style.py", "stylize.py", "evaluate_style.py"):
            run_stage(proj, script)
    assert (proj / "models/style/msgnet.pt").exists() and (proj / "plots/style/figure.png").exists()
    assert sorted(f.name for f in (proj / "samples/style/pencil/images").iterdir()) == ["face0.png", "flower.png"]
    for style in TINY["styles"]:
        m = json.loads((proj / f"metrics/style/{style}.json").read_text())
        for key in ("style_loss", "style_loss_content_image", "content_loss", "images_per_s", "speedup_vs_gatys",
                    "loss_network", "style_loss_gatys", "content_loss_gatys", "gatys_seconds_per_image"):
            assert key in m, key
        assert m["loss_network"] == "vgg16-random(seed=0)"
        # pencil (the seed's style, strong texture) is learnt at this tiny size; relief's gain is small even at full
        # size (default run: 2.9x on the Xeon, 1.5x on Zen 5) and at 80 tiny steps it sits within 1 % of the
        # content image's on Zen 5 (below it on the Xeon): checked as "not worse"
        bound = 1.0 if style == "pencil" else 1.05
        assert m["style_loss"] < bound * m["style_loss_content_image"], (style, m)
        assert m["images_per_s"] > 0 and m["speedup_vs_gatys"] > 1
