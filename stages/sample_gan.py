"""Stage `sample_gan@<name>`: 1000 fixed-seed face PNGs (course format), a grid of the first 32, and the PNGs'
manifest (md5 of each, genda.pipeline.manifest) that evaluate_gan depends on."""
import sys
from pathlib import Path

from genda.runtime import stage
from genda.config import load_params


def main() -> None:
    # heavy imports inside main: with GENDA_WARM the stage runs in a warm worker that has them (genda.runtime.forkserver)
    from genda.data.pngs import save_grid, save_pngs
    from genda.pipeline.manifest import MANIFEST, write_manifest
    from genda.runtime.device import get_device
    from genda.gan.sample import generate, load_generator

    name = sys.argv[1]
    params = load_params()
    s = params["sample"]
    device = get_device()
    G, cfg = load_generator(Path(f"models/gan/{name}/generator.pt"), device)
    images = generate(G, cfg, s["n_images"], s["seed"], device, bn_mode=s.get("bn_mode", "eval"),
                      compute=params.get("compute"))
    out = Path(f"samples/gan/{name}")
    save_pngs(images, out / "images")
    save_grid(images[: s["grid"]], out / "grid.png")
    write_manifest(out / "images", out / MANIFEST)  # what evaluate_gan depends on and checks (genda.pipeline.manifest)
    print(f"[sample_gan] {len(images)} images -> {out}/images, grid -> {out}/grid.png")


if __name__ == "__main__":
    stage.run(main)
