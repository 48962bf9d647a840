"""compute.precision / compute.channels_last (genda.runtime.precision): resolution, numerics, and the record."""
import pytest
import torch

from conftest import ROOT
from genda.runtime import precision
from genda.config import load_params
from genda.errors import ConfigError


def test_auto_is_bf16_only_where_bf16_was_measured_faster(monkeypatch):
    from genda.runtime import device

    cpu = torch.device("cpu")
    intel, amd = "GenuineIntel", "AuthenticAMD"
    for vendor, flags, want in ((intel, "avx2", "fp32"), (amd, "avx2", "fp32"), (intel, "avx2 avx512f", "fp32"),
                                (amd, "avx2 avx512f", "fp32"),  # AVX-512 without BF16: emulated
                                (intel, "avx2 avx512f avx512_bf16", "fp32"),  # measured 0.79-0.94x fp32
                                (amd, "avx2 avx512f avx512_bf16", "bf16"),  # measured 1.4-2.5x fp32 (Zen 5)
                                (intel, "avx2 avx512f amx_tile amx_bf16", "bf16")):
        monkeypatch.setattr(device, "cpu_info", lambda f=flags, v=vendor: {"cpu": "x", "cpu_vendor": v,
                                                                             "cpu_isa": f, "cpu_cores": 2})
        assert precision.resolve("auto", cpu) == want and precision.active() == want, (vendor, flags)
    assert precision.resolve("bf16", cpu) == "bf16" and precision.resolve("fp32", cpu) == "fp32"
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        precision.resolve("fp16", cpu)


def test_cpu_info_reads_model_vendor_and_the_isa_that_decides_auto(tmp_path):
    from genda.runtime.device import cpu_info

    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel name\t: AMD EPYC\n"
                 "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n\nprocessor\t: 1\n"
                 "vendor_id\t: AuthenticAMD\nflags\t\t: fpu\n")
    info = cpu_info(str(f))
    assert (info["cpu"], info["cpu_vendor"]) == ("AMD EPYC", "AuthenticAMD")
    assert info["cpu_isa"] == "avx2 avx512f avx512_bf16 avx512_vnni"  # the first processor's flags


def test_environment_records_the_active_precision():
    from genda.runtime.records import environment

    precision.resolve("bf16", torch.device("cpu"))
    assert environment()["precision"] == "bf16"
    precision.resolve("fp32", torch.device("cpu"))
    assert environment()["precision"] == "fp32"


def test_compute_section_is_validated(tmp_path):
    import yaml

    from conftest import ROOT

    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["compute"]["precision"] = "half"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    with pytest.raises(ConfigError, match=r"compute.precision.*auto, fp32, bf16"):
        load_params(tmp_path / "params.yaml", check_paths=False)
    p["compute"] = {"precision": "fp32", "channel_last": True}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    with pytest.raises(ConfigError, match="did you mean 'channels_last'"):
        load_params(tmp_path / "params.yaml", check_paths=False)


def test_a_training_family_overrides_the_top_level_compute(tmp_path):
    """da.compute / cond.compute / cond_gens.<name>.compute / gan.compute / face_gans.<name>.compute replace only
    the keys they set, later wins; a typo in them is named like one in the top-level section."""
    import yaml

    from genda.config import effective_compute, face_gan_config
    from genda.config import cond_config

    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["compute"] = {"precision": "fp32", "channels_last": True}
    p["da"]["compute"] = {"precision": "bf16"}
    p["cond"]["compute"] = {"channels_last": False}
    p["cond_gens"]["ddpm"]["compute"] = {"precision": "bf16"}
    p["cond_gens"]["acgan"].pop("compute", None)
    p["gan"]["compute"] = {"channels_last": False}
    p["face_gans"]["dcgan"]["compute"] = {"precision": "bf16"}
    p["face_gans"]["dcgan_tricks"].pop("compute", None)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    p = load_params(tmp_path / "params.yaml", check_paths=False)
    assert face_gan_config(p, "dcgan")["compute"] == {"precision": "bf16", "channels_last": False}
    assert face_gan_config(p, "dcgan_tricks")["compute"] == {"precision": "fp32", "channels_last": False}
    del p["gan"]["compute"]
    assert face_gan_config(p, "dcgan_tricks")["compute"] == {"precision": "fp32", "channels_last": True}
    assert effective_compute(p, p["da"].get("compute")) == {"precision": "bf16", "channels_last": True}
    assert cond_config(p, "ddpm")["compute"] == {"precision": "bf16", "channels_last": False}
    assert cond_config(p, "acgan")["compute"] == {"precision": "fp32", "channels_last": False}
    assert effective_compute(p) == {"precision": "fp32", "channels_last": True}  # samplers: the top level
    p["cond_gens"]["ddpm"]["compute"] = {"precison": "bf16"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    with pytest.raises(ConfigError, match=r"cond_gens.ddpm.compute.precison.*did you mean 'precision'"):
        load_params(tmp_path / "params.yaml", check_paths=False)
    p["cond_gens"]["ddpm"]["compute"] = {"precision": "bf16"}
    p["face_gans"]["dcgan"]["compute"] = {"precision": "half"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    with pytest.raises(ConfigError, match=r"face_gans.dcgan.compute.precision.*auto, fp32, bf16"):
        load_params(tmp_path / "params.yaml", check_paths=False)


def _train_dann(compute, steps=20):
    from genda.da.methods import build_method

    torch.manual_seed(0)
    c = precision.Compute(compute, torch.device("cpu"))
    m = c.module(build_method("dann"))
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    xs, xt = torch.rand(16, 3, 28, 28, generator=g) * 2 - 1, torch.rand(16, 3, 28, 28, generator=g) * 2 - 1
    ys = (xs.mean(dim=(1, 2, 3)) > 0).long() + 2 * (xs[:, 0].mean(dim=(1, 2)) > 0).long()
    losses = []
    for i in range(steps):
        with c.autocast():
            loss, logs = m.training_step(c.images(xs), ys, c.images(xt), i / steps)
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(logs["cls"])
    return m, losses


def test_bf16_autocast_and_channels_last_train_like_fp32():
    """Same recipe, three numerics: fp32 NCHW, fp32 channels_last (same maths, other summation order), bf16
    autocast (weights stay fp32). All learn the toy task; channels_last tracks fp32 closely, bf16 loosely."""
    m32, l32 = _train_dann({"precision": "fp32", "channels_last": False})
    mcl, lcl = _train_dann({"precision": "fp32", "channels_last": True})
    mbf, lbf = _train_dann({"precision": "bf16", "channels_last": False})
    assert all(p.dtype == torch.float32 for p in mbf.parameters())  # mixed precision: fp32 master weights
    assert next(mcl.net.features.parameters()).is_contiguous(memory_format=torch.channels_last)
    for losses in (l32, lcl, lbf):
        assert losses[-1] < 0.5 * losses[0]  # it learns
    assert abs(lcl[-1] - l32[-1]) < 0.02 and abs(lbf[-1] - l32[-1]) < 0.3
    assert lbf != l32  # bf16 really ran: other numbers


def test_a_channels_last_acgan_generator_upsamples_in_channels_last_with_unchanged_values():
    """The ACGAN generator's first feature map comes out of a Linear in NCHW; in a channels_last network it is
    converted before the nearest upsampling (NCHW upsampling is ~20x slower on a CPU, then the convolution converts
    the 4x larger map). The values are those of the NCHW network, and an NCHW network is left as it was."""
    from genda.cond.models.acgan import ACGANGenerator

    torch.manual_seed(0)
    nchw = ACGANGenerator(z_dim=8, n_classes=10, img_size=28, ngf=8)
    cl = precision.Compute({"precision": "fp32", "channels_last": True}, torch.device("cpu")).module(
        ACGANGenerator(z_dim=8, n_classes=10, img_size=28, ngf=8))
    cl.load_state_dict(nchw.state_dict())
    seen = {}
    for name, g in (("nchw", nchw), ("cl", cl)):
        g.blocks[0].register_forward_pre_hook(
            lambda m, a, name=name: seen.__setitem__(name, a[0].is_contiguous(memory_format=torch.channels_last)))
    z, c = torch.randn(6, 8), torch.arange(6)
    out_nchw, out_cl = nchw.eval()(z, c), cl.eval()(z, c)
    assert seen == {"nchw": False, "cl": True}
    assert out_cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out_cl, out_nchw, rtol=1e-5, atol=1e-6)


class _ScoredBy:
    """Forward hook on one convolution: after each call, the output it produced and the one its fp32 weights of
    that moment give in bf16 with autocast's weight cache off (the layer as it really was)."""

    def __init__(self, conv: torch.nn.Conv2d) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        conv.register_forward_hook(self)

    def __call__(self, conv, inputs, out) -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
            fresh = conv._conv_forward(inputs[0], conv.weight, conv.bias)
        self.calls.append((out.detach().clone(), fresh, conv.weight.detach().clone()))  # clone: in-place ReLUs follow

    def check(self, n_calls: int) -> None:
        assert len(self.calls) == n_calls
        assert all(out.dtype == torch.bfloat16 for out, _, _ in self.calls)
        assert not torch.equal(self.calls[0][2], self.calls[-1][2])  # D was updated between its first and last call
        for out, fresh, _ in self.calls:  # ... and every call used D's weights of that moment
            assert torch.equal(out, fresh)


def _first_conv(net: torch.nn.Module) -> torch.nn.Conv2d:
    return next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))


def test_a_bf16_gan_step_scores_g_with_the_updated_discriminator(tmp_path, monkeypatch):
    """Autocast caches one bf16 copy of each weight per autocast region; a region that spanned opt_d.step() made
    the G step use the D from before its update (bf16 only: the alternating GAN step became a stale one). The
    trainers open a region per forward pass: D's three calls of a step (real, fake, G's fake) each see its
    weights of that moment."""
    from genda.config import face_gan_config
    from genda.gan import train as gan

    build, seen = gan.build_discriminator, []

    def hooked(cfg):
        d = build(cfg)
        seen.append(_ScoredBy(_first_conv(d)))
        return d
    monkeypatch.setattr(gan, "build_discriminator", hooked)
    cfg = face_gan_config(load_params(ROOT / "params.yaml", check_paths=False), "dcgan")
    cfg.update(steps=1, batch_size=4, ngf=8, ndf=8, lr_d=1e-2, checkpoint_every=10, log_every=1)
    x = torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    gan.train_gan(cfg, x, seed=0, device=torch.device("cpu"), ckpt_dir=tmp_path / "ck", out_model=tmp_path / "G.pt",
                  progress=False, compute={"precision": "bf16", "channels_last": False})
    seen[0].check(3)


@pytest.mark.parametrize("name", ["acgan", "tag_cdcgan"])
def test_a_bf16_conditional_gan_step_scores_g_with_the_updated_discriminator(name):
    """The same for the conditional GANs' training_step under the trainer's autocast factory."""
    from genda.config import cond_config
    from genda.cond.methods import build_method

    params = load_params(ROOT / "params.yaml", check_paths=False)
    params["cond_gens"].setdefault(name, {"method": name})
    cfg = cond_config(params, name)
    cfg.update(batch_size=4, ngf=8, ndf=8, lr_d=1e-2, d_steps=1)
    if name == "acgan":
        meta, cond = {"n_classes": 10, "img_size": 28, "channels": 1}, torch.arange(4) % 10
        x = torch.rand(4, 1, 28, 28) * 2 - 1
    else:
        meta = {"n_classes": 0, "img_size": 64, "channels": 3, "tag_dims": [4, 3]}
        cond, x = torch.tensor([[0, 1], [1, 2], [2, 0], [3, 1]]), torch.rand(4, 3, 64, 64) * 2 - 1
    m = build_method(cfg, meta, torch.device("cpu"), torch.Generator().manual_seed(0))
    m.autocast = precision.Compute({"precision": "bf16"}, torch.device("cpu")).autocast
    hook = _ScoredBy(_first_conv(m.D))
    m.training_step([(x, cond)], 0)
    hook.check(5 if name == "tag_cdcgan" else 3)  # tag_cdcgan: D scores 4 pairs in its step
