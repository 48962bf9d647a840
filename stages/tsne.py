"""Stage `tsne@<pair>`: t-SNE of test features of every DA setting, coloured by class and by domain."""
import sys
from pathlib import Path

from genda.runtime import stage
from genda.config import load_params
from genda.errors import DataError


def main() -> None:
    # heavy imports inside main: with GENDA_WARM the stage runs in a warm worker that has them (genda.runtime.forkserver)
    import numpy as np

    from genda.pipeline.plots import tsne_2d, tsne_figure

    pair = sys.argv[1]
    params = load_params()
    src, tgt = pair.split("-")
    for setting in params["da"]["settings"]:
        path = Path(f"features/da/{pair}/{setting}.npz")
        if not path.exists():
            raise DataError(f"{path} not found; run `dvc repro evaluate_da@{pair}` first")
        f = np.load(path)
        emb = tsne_2d(f["features"], seed=params["seed"])
        out = tsne_figure(emb, f["labels"], f["domains"], f"{pair} {setting}", Path(f"plots/tsne/{pair}/{setting}.png"),
                          domain_names=(f"{src} (source)", f"{tgt} (target)"))
        print(f"[tsne] {out}")


if __name__ == "__main__":
    stage.run(main)
