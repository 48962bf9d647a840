"""Stage `train_style`: one MSG-Net over every style of style.styles (genda.style.train), checkpointed and resumable;
its wall time goes to metrics/style_train/timing.json, its losses to metrics/style_train/losses.csv."""
from pathlib import Path

from genda.runtime import stage
from genda.config import effective_compute, load_params
from genda.runtime.tracking import Tracker


def main() -> None:
    params = load_params()
    st = params["style"]
    with Tracker("train_style", params={**st, "seed": params["seed"]}) as tr:
        # torch-heavy imports after the Tracker has started MLflow in its helper process (they overlap)
        from genda.data.store import faces_path, load_prepared
        from genda.runtime.device import get_device
        from genda.style.images import training_content
        from genda.style.train import train_style
        from genda.train.timing import write_timing

        faces = load_prepared(faces_path(), kind="faces")
        content = training_content(faces["x_train"], st["photo_crops"], st["image_size"], params["seed"])
        _, _, wall = train_style(st, content, seed=params["seed"], device=get_device(),
                                 ckpt_dir=Path("checkpoints/style"), out_model=Path("models/style/msgnet.pt"),
                                 loss_csv=Path("metrics/style_train/losses.csv"), tracker=tr,
                                 compute=effective_compute(params, st.get("compute")))
        write_timing(Path("metrics/style_train/timing.json"), "msgnet.pt", train_seconds=wall, curve_wall_s=[])


if __name__ == "__main__":
    stage.run(main)
