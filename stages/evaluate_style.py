"""Stage `evaluate_style`: per style, the content and style losses of the stylised held-out photos against the content
images and Gatys et al.'s per-image optimisation, the speed-up over it (metrics/style/<style>.json), and the figure
content | style | MSG-Net | Gatys, one row per style (plots/style/figure.png); genda.style.evaluate."""
import json
from pathlib import Path

from genda.runtime import stage
from genda.config import effective_compute, load_params


def main() -> None:
    import torch

    from genda.data.pngs import read_pngs
    from genda.data.store import faces_path, load_prepared
    from genda.errors import DataError
    from genda.runtime.device import get_device
    from genda.runtime.precision import Compute
    from genda.runtime.records import write_metrics
    from genda.style.evaluate import features, style_figure, style_metrics
    from genda.style.gatys import gatys
    from genda.style.images import heldout_content, style_image
    from genda.style.vgg import load_loss_network
    from genda.train.timing import read_timing

    params = load_params()
    st = params["style"]
    device = get_device()
    c = Compute(effective_compute(params, st.get("compute")), device)
    vgg, vgg_name = load_loss_network(st["vgg_weights"], st["vgg_seed"], device)
    vgg = c.module(vgg)
    held, names = heldout_content(load_prepared(faces_path(), kind="faces")["x_test"], st["n_faces"], st["eval_size"])
    speed_file = Path("samples/style/speed.json")
    speed = json.loads(speed_file.read_text())["seconds_per_image"]
    train_s = read_timing(Path("metrics/style_train/timing.json"), "msgnet.pt").get("train_seconds")
    weights = {k: st[k] for k in ("content_weight", "style_weight", "tv_weight")}
    rows, content_feats = {}, features(vgg, held)
    for s in st["styles"]:
        folder = Path(f"samples/style/{s}/images")
        outputs, stems = read_pngs(folder)
        if stems != sorted(names) or outputs.shape[1:] != held.shape[1:]:
            raise DataError(f"{folder}: expected {sorted(names)} at {tuple(held.shape[1:])}, found {stems} at "
                            f"{tuple(outputs.shape[1:])}; rerun `dvc repro stylize`")
        outputs = outputs[[stems.index(n) for n in names]]
        style = style_image(s, st["style_size"])
        runs = [gatys(held[i:i + 1], style, vgg, weights, steps=st["gatys_steps"], lr=st["gatys_lr"], c=c)
                for i in range(min(st["gatys_images"], len(held)))]
        shown = style_image(s, st["eval_size"])
        m = style_metrics(vgg, content=held, outputs=outputs, style=style, style_for_content=shown,
                          gatys_images=torch.cat([r[0] for r in runs]),
                          gatys_seconds=[r[1] for r in runs], seconds_per_image=speed[s], train_seconds=train_s,
                          content_feats=content_feats)
        m.update(style=s, loss_network=vgg_name, gatys_steps=st["gatys_steps"], gatys_lr=st["gatys_lr"],
                 images=names)
        write_metrics(m, Path(f"metrics/style/{s}.json"))
        rows[s] = [held[0], shown[0], outputs[0], runs[0][0][0]]
        print(f"[evaluate_style] {s} ({vgg_name}): style loss {m['style_loss']:.3g} vs content image "
              f"{m['style_loss_content_image']:.3g} ({m['style_loss_ratio']:.1f}x lower), content loss "
              f"{m['content_loss']:.3g}; Gatys style {m['style_loss_gatys']:.3g} in {m['gatys_seconds_per_image']:.1f} s;"
              f" {m['images_per_s']:.1f} images/s, {m['speedup_vs_gatys']:.0f}x faster than Gatys")
    style_figure(rows, Path("plots/style/figure.png"), loss_network=vgg_name, gatys_steps=st["gatys_steps"])


if __name__ == "__main__":
    stage.run(main)
