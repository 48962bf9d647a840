"""The face GANs' networks from their config: ``arch`` dcgan (DCGAN G and D with DCGAN init, D's norm and spectral
norm as configured) or stylegan2_lite."""
from __future__ import annotations

from torch import nn


def build_generator(cfg: dict) -> nn.Module:
    if cfg["arch"] == "stylegan2_lite":
        from genda.gan.models.stylegan2_lite import StyleGAN2LiteGenerator

        return StyleGAN2LiteGenerator(z_dim=cfg["z_dim"])
    from genda.gan.models.dcgan import DCGANGenerator, init_dcgan_weights

    g = DCGANGenerator(z_dim=cfg["z_dim"], ngf=cfg["ngf"])
    g.apply(init_dcgan_weights)
    return g


def build_discriminator(cfg: dict) -> nn.Module:
    if cfg["arch"] == "stylegan2_lite":
        from genda.gan.models.stylegan2_lite import StyleGAN2LiteDiscriminator

        return StyleGAN2LiteDiscriminator()
    from genda.gan.models.dcgan import DCGANDiscriminator, init_dcgan_weights

    d = DCGANDiscriminator(ndf=cfg["ndf"], norm=cfg["d_norm"], spectral=cfg["spectral_norm"])
    d.apply(init_dcgan_weights)
    return d
