"""Stage `sample_cond@<name>`: fixed-seed conditional samples in the course format (params: cond_sample).

Digits: samples/cond/<name>/images/{digit}_{nnn}.png (n_per_class per digit) + grid.png (a row per digit),
ddpm also reverse.png; attr_acgan: off/on pairs from the same z; tag_cdcgan: every tag combination; and
samples/cond/<name>/manifest.json (md5 of every file, genda.pipeline.manifest), which evaluate_cond depends on."""
import sys
from pathlib import Path

from genda.runtime import stage
from genda.config import load_params


def main() -> None:
    # heavy imports inside main: with GENDA_WARM the stage runs in a warm worker that has them (genda.runtime.forkserver)
    from genda.pipeline.manifest import MANIFEST, write_manifest
    from genda.runtime.device import get_device
    from genda.cond.sample import load_cond_model, write_samples

    name = sys.argv[1]
    params = load_params()
    method, _, meta = load_cond_model(Path(f"models/cond/{name}/model.pt"), get_device())
    out = Path(f"samples/cond/{name}")
    info = write_samples(method, meta, params["cond_sample"], out, compute=params.get("compute"))
    write_manifest(out, out / MANIFEST)  # what evaluate_cond depends on and checks (genda.pipeline.manifest)
    print(f"[sample_cond] {info['n_images']} images -> {out}/images, grid -> {out}/grid.png")


if __name__ == "__main__":
    stage.run(main)
