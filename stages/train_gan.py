"""Stage `train_gan@<name>`: train face-GAN method <name> (params: gan + face_gans.<name> + lr_d/lr_g/label_smoothing)."""
import sys
from pathlib import Path

from genda.runtime import stage
from genda.config import face_gan_config, load_params
from genda.runtime.tracking import Tracker


def main() -> None:
    name = sys.argv[1]
    params = load_params()
    cfg = face_gan_config(params, name)
    with Tracker(f"train_gan@{name}", params={"method": name, **cfg, "seed": params["seed"]}) as tr:
        # torch-heavy imports after the Tracker has started MLflow in its helper process (they overlap)
        from genda.data.store import faces_path, load_prepared
        from genda.runtime.device import get_device
        from genda.gan.train import train_gan

        faces = load_prepared(faces_path(), kind="faces")
        train_gan(cfg, faces["x_train"], seed=params["seed"], device=get_device(),
                  ckpt_dir=Path(f"checkpoints/gan/{name}"), out_model=Path(f"models/gan/{name}/generator.pt"),
                  tracker=tr, loss_csv=Path(f"metrics/gan/{name}/losses.csv"), compute=cfg["compute"])
        tr.log_artifact(f"metrics/gan/{name}/losses.csv")


if __name__ == "__main__":
    stage.run(main, distributed=True)
