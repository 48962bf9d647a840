"""Stage `evaluate_cond@<name>`: classifier accuracy (digits: overall and per class; attr_acgan: attribute)
and FID/KID (faces also IS and face rate) of the conditional samples -> metrics/cond/<name>.json; the digit
generators' training curve (accuracy of the curve samples kept in the model, vs step; the report joins the
wall times from metrics/cond/<name>/timing.json) -> metrics/cond/curves/<name>.csv."""
import sys
from pathlib import Path

from genda.runtime import stage
from genda.runtime.records import write_metrics
from genda.config import load_params
from genda.runtime.tracking import Tracker


def main() -> None:
    name = sys.argv[1]
    params = load_params()
    with Tracker(f"evaluate_cond@{name}", params={"name": name, **params["evaluate"]}) as tr:
        # torch-heavy import after the Tracker has started MLflow in its helper process (they overlap)
        from genda.pipeline.manifest import MANIFEST, verify_manifest
        from genda.metrics.cond_eval import evaluate_samples, write_curve

        verify_manifest(Path(f"samples/cond/{name}"), Path(f"samples/cond/{name}/{MANIFEST}"))

        m = evaluate_samples(Path(f"samples/cond/{name}"), params["evaluate"], params["classifier"],
                             seed=params["seed"], reference_dir=Path("features/fid"))
        write_curve(Path(f"models/cond/{name}/model.pt"), name, Path(f"metrics/cond/curves/{name}.csv"))
        # the numerics it was trained in (cond_gens.<name>.compute over compute); m["env"] is this evaluation's
        from genda.runtime.checkpoint import load_weights

        m["train_compute"] = load_weights(Path(f"models/cond/{name}/model.pt")).get("compute")  # resolved (auto -> ...)
        write_metrics(m, Path(f"metrics/cond/{name}.json"))
        tr.log_metrics({k: v for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        tr.set_tags({"fid_extractor": m.get("extractor", "")})
        tr.log_artifact(f"samples/cond/{name}/grid.png")
    print("[evaluate_cond] " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in m.items() if not isinstance(v, dict)))


if __name__ == "__main__":
    stage.run(main)
