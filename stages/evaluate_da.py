"""Stage `evaluate_da@<pair>`: target/source test accuracy (mean ± std over seeds) of every setting in
da.settings -> metrics/da/<pair>.json, their test features for t-SNE -> features/da/<pair>/<setting>.npz,
and their training curves (test accuracy vs step; the report joins the wall times from the trainings' timing
files) -> metrics/da/curves/<pair>.csv."""
import sys
from pathlib import Path

from genda.runtime import stage
from genda.config import load_params
from genda.runtime.tracking import Tracker


def main() -> None:
    pair = sys.argv[1]
    params = load_params()
    da = params["da"]
    with Tracker(f"evaluate_da@{pair}", params={"pair": pair, "settings": da["settings"], "seeds": da["seeds"]}) as tr:
        # torch-heavy import after the Tracker has started MLflow in its helper process (they overlap)
        from genda.da.evaluate import evaluate_pair

        out = evaluate_pair(pair, da["settings"], da["seeds"], da["tsne_points"], out_json=Path(f"metrics/da/{pair}.json"),
                            features_dir=Path(f"features/da/{pair}"), out_curves=Path(f"metrics/da/curves/{pair}.csv"))
        tr.log_metrics({f"{s}.{k}": v for s, m in out.items() for k, v in m.items() if isinstance(v, float)})


if __name__ == "__main__":
    stage.run(main)
