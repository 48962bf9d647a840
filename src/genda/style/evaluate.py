"""The style metrics and the figure (stage ``evaluate_style``).

Per style, over the held-out images (:func:`genda.style.images.heldout_content`), with the loss network in fp32
(:mod:`genda.style.vgg`; its name is recorded as ``loss_network``) and every image read back as uint8, as saved:

* ``style_loss``: mean :math:`\\ell_s` of MSG-Net's outputs against the style image (Grams at ``style_size``);
  ``style_loss_content_image``: the same for the content images themselves (baseline 1: doing nothing);
  ``style_loss_ratio`` = content image / MSG-Net (how many times lower);
* ``content_loss``: mean :math:`\\ell_c` (``relu2_2``) between output and content; ``content_loss_style_image``:
  that of the style image itself (resized) against each content image, the scale at which the subject is gone;
* baseline 2, Gatys et al.'s per-image optimisation (:mod:`genda.style.gatys`) on the first ``gatys_images``
  held-out images: ``style_loss_gatys``, ``content_loss_gatys``, ``gatys_seconds_per_image`` (wall time at the
  evaluation side, same threads and precision as the stylizer), and MSG-Net's losses on those same images
  (``style_loss_msgnet_same_images``, ``content_loss_msgnet_same_images``);
* speed: ``images_per_s`` and ``seconds_per_image`` of the feed-forward stylizer (stage ``stylize``, same side) and
  ``speedup_vs_gatys`` = Gatys seconds per image / MSG-Net seconds per image, both at the evaluation side (256x256)
  on this machine; ``gatys_images_in_train_time`` = MSG-Net's training seconds / Gatys seconds per image (how many
  images per-image optimisation finishes in the time MSG-Net took to learn every style).

Losses are deterministic for given params on one CPU; the seconds are wall-clock measurements.
"""
from __future__ import annotations

from pathlib import Path

import torch

from genda.data.tensors import to_float_images
from genda.style.losses import content_loss, style_grams, style_loss

__all__ = ["features", "image_losses", "style_metrics", "style_figure"]


COLUMNS = ("content", "style", "MSG-Net", "Gatys")


@torch.no_grad()
def features(vgg, images: torch.Tensor) -> list[list[torch.Tensor]]:
    """The loss network's features of each uint8 image ``[N,3,S,S]`` (fp32, one image at a time)."""
    return [vgg(to_float_images(x[None])) for x in images]


@torch.no_grad()
def image_losses(feats_y: list, feats_x: list, grams_s: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(content loss ``[N]``, style loss ``[N]``) of images against content images (their :func:`features`) and
    the style's Grams."""
    return (torch.stack([content_loss(fy, fx) for fy, fx in zip(feats_y, feats_x)]),
            torch.stack([style_loss(fy, grams_s) for fy in feats_y]))


def style_metrics(vgg, *, content: torch.Tensor, outputs: torch.Tensor, style: torch.Tensor,
                  style_for_content: torch.Tensor, gatys_images: torch.Tensor, gatys_seconds: list[float],
                  seconds_per_image: float, train_seconds: float | None, content_feats: list | None = None) -> dict:
    """The metrics of one style (module docstring). uint8 tensors: ``content`` and ``outputs`` ``[N,3,S,S]``,
    ``style`` ``[1,3,S',S']`` (the loss target), ``style_for_content`` ``[1,3,S,S]`` (the style image at the
    content side), ``gatys_images`` ``[K,3,S,S]`` (for the first K content images); ``content_feats``: the content
    images' features if already computed (they are the same for every style)."""
    k = len(gatys_images)
    fx = content_feats or features(vgg, content)
    with torch.no_grad():
        gs = style_grams(vgg(to_float_images(style)))
    lc, ls = image_losses(features(vgg, outputs), fx, gs)
    _, ls0 = image_losses(fx, fx, gs)
    lcs, _ = image_losses(features(vgg, style_for_content) * len(content), fx, gs)
    lcg, lsg = image_losses(features(vgg, gatys_images), fx[:k], gs)
    gatys_s = sum(gatys_seconds) / k
    m = {"style_loss": float(ls.mean()), "style_loss_content_image": float(ls0.mean()),
         "style_loss_ratio": float(ls0.mean() / ls.mean()), "content_loss": float(lc.mean()),
         "content_loss_style_image": float(lcs.mean()),
         "style_loss_gatys": float(lsg.mean()), "content_loss_gatys": float(lcg.mean()),
         "style_loss_msgnet_same_images": float(ls[:k].mean()),
         "content_loss_msgnet_same_images": float(lc[:k].mean()),
         "per_image": {"style_loss": [float(v) for v in ls], "style_loss_content_image": [float(v) for v in ls0],
                       "content_loss": [float(v) for v in lc]},
         "n_images": len(content), "gatys_images": k, "size": int(content.shape[-1]),
         "images_per_s": 1.0 / seconds_per_image, "seconds_per_image": seconds_per_image,
         "gatys_seconds_per_image": gatys_s, "speedup_vs_gatys": gatys_s / seconds_per_image}
    if train_seconds is not None:
        m.update(train_seconds=train_seconds, gatys_images_in_train_time=train_seconds / gatys_s)
    return m


def style_figure(rows: dict[str, list[torch.Tensor]], path: Path, *, loss_network: str, gatys_steps: int) -> Path:
    """The figure content | style | MSG-Net | Gatys, one row per style (``rows``: style -> four uint8 ``[3,S,S]``
    images), titled with the loss network; a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(rows)
    fig, axes = plt.subplots(n, 4, figsize=(8, 2.1 * n + 0.4), squeeze=False)
    for r, (name, imgs) in enumerate(rows.items()):
        for col, img in enumerate(imgs):
            ax = axes[r][col]
            ax.imshow(img.permute(1, 2, 0).numpy())
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(COLUMNS[col] if col < 3 else f"Gatys ({gatys_steps} steps)", fontsize=9)
            if col == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.suptitle(f"style transfer; losses by {loss_network}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
