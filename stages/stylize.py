"""Stage `stylize`: the trained MSG-Net (feed-forward) on the held-out photos in every style of style.styles:
samples/style/<style>/images/<name>.png and grid.png (content row, stylised row), and the stylizer's speed at
style.eval_size (samples/style/speed.json, genda.style.stylize)."""
from pathlib import Path

from genda.runtime import stage
from genda.config import effective_compute, load_params


def main() -> None:
    # heavy imports inside main: with GENDA_WARM the stage runs in a warm worker that has them (genda.runtime.forkserver)
    import torch

    from genda.data.pngs import save_grid, save_pngs
    from genda.data.store import faces_path, load_prepared
    from genda.errors import ConfigError
    from genda.runtime.device import get_device
    from genda.runtime.precision import Compute
    from genda.runtime.records import environment, write_json
    from genda.style.images import heldout_content
    from genda.style.stylize import seconds_per_image, stylize
    from genda.style.train import load_stylizer

    params = load_params()
    st = params["style"]
    device = get_device()
    model, info = load_stylizer(Path("models/style/msgnet.pt"), device)
    c = Compute(effective_compute(params, st.get("compute")), device)
    model = c.module(model)
    held, names = heldout_content(load_prepared(faces_path(), kind="faces")["x_test"], st["n_faces"], st["eval_size"])
    speed = {}
    for s in st["styles"]:
        if s not in info["styles"]:
            raise ConfigError(f"style '{s}' of 'style.styles' is not one the model was trained on "
                              f"({', '.join(info['styles'])}); rerun `dvc repro train_style`")
        out = stylize(model, held, s, info["cfg"]["style_size"], c)
        save_pngs(out, Path(f"samples/style/{s}/images"), names)
        save_grid(torch.cat([held, out]), Path(f"samples/style/{s}/grid.png"), nrow=len(held))
        speed[s] = seconds_per_image(model, st["eval_size"], st["speed_images"], c)
        print(f"[stylize] {s}: {len(out)} images -> samples/style/{s}/images, "
              f"{1 / speed[s]:.1f} images/s at {st['eval_size']}x{st['eval_size']}")
    write_json({"seconds_per_image": speed, "size": st["eval_size"], "passes": st["speed_images"],
                "env": environment(c.precision)}, Path("samples/style/speed.json"))


if __name__ == "__main__":
    stage.run(main)
