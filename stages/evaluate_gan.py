"""Stage `evaluate_gan@<name>`: FID / IS / KID (torch-fidelity) and face-detection rate of the samples."""
import sys
from pathlib import Path

from genda.runtime import stage
from genda.config import load_params
from genda.runtime.tracking import Tracker


def main() -> None:
    name = sys.argv[1]
    params = load_params()
    with Tracker(f"evaluate_gan@{name}", params={"method": name, **params["evaluate"]}) as tr:
        # torch-heavy import after the Tracker has started MLflow in its helper process (they overlap)
        from genda.pipeline.manifest import MANIFEST, verify_manifest
        from genda.metrics.gan_eval import evaluate_face_samples

        verify_manifest(Path(f"samples/gan/{name}/images"), Path(f"samples/gan/{name}/{MANIFEST}"))

        metrics = evaluate_face_samples(Path(f"samples/gan/{name}/images"), params["evaluate"],
                                        out=Path(f"metrics/gan/{name}/eval.json"),
                                        reference_cache=Path("features/fid/faces.pt"))
        tr.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        tr.set_tags({"fid_extractor": metrics.get("extractor", "")})
        tr.log_artifact(f"samples/gan/{name}/grid.png")


if __name__ == "__main__":
    stage.run(main)
