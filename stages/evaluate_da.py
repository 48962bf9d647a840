"""Stage `evaluate_da@<pair>-<setting>`: target/source test accuracy (mean ± std over seeds) + t-SNE features."""
import sys
from pathlib import Path

from genda import stage
from genda.config import load_params
from genda.da.evaluate import evaluate_setting
from genda.tracking import Tracker


def main() -> None:
    pair, setting = sys.argv[1], sys.argv[2]
    params = load_params()
    with Tracker(f"evaluate_da@{pair}-{setting}", params={"pair": pair, "setting": setting}) as tr:
        m = evaluate_setting(pair, setting, params["da"]["seeds"], params["da"]["tsne_points"],
                             out_json=Path(f"metrics/da/{pair}/{setting}.json"),
                             out_features=Path(f"features/da/{pair}/{setting}.npz"))
        tr.log_metrics({k: v for k, v in m.items() if isinstance(v, float)})


if __name__ == "__main__":
    stage.run(main)
