"""Stage `train_cond@<name>`: train conditional generator <name> (params: cond + cond_gens.<name>)."""
import sys
from pathlib import Path

from genda.runtime import stage
from genda.config import load_params
from genda.config import cond_config
from genda.runtime.tracking import Tracker


def main() -> None:
    name = sys.argv[1]
    params = load_params()
    cfg = cond_config(params, name)
    with Tracker(f"train_cond@{name}", params={"name": name, **cfg, "seed": params["seed"]}) as tr:
        # torch-heavy imports after the Tracker has started MLflow in its helper process (they overlap)
        from genda.runtime.device import get_device
        from genda.cond.train import load_cond_data, train_cond

        data = load_cond_data(cfg, name, seed=params["seed"])
        train_cond(cfg, data, seed=params["seed"], device=get_device(), ckpt_dir=Path(f"checkpoints/cond/{name}"),
                   out_model=Path(f"models/cond/{name}/model.pt"), tracker=tr,
                   loss_csv=Path(f"metrics/cond/{name}/losses.csv"), compute=cfg["compute"],
                   out_timing=Path(f"metrics/cond/{name}/timing.json"))
        tr.log_artifact(f"metrics/cond/{name}/losses.csv")


if __name__ == "__main__":
    stage.run(main, distributed=True)
