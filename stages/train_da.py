"""Stage `train_da@<pair>-<setting>`: train one DA setting on one source-target pair, for every seed in da.seeds."""
import sys
from pathlib import Path

from genda.runtime import stage
from genda.config import da_setting_config, effective_compute, load_params
from genda.runtime.tracking import Tracker


def main() -> None:
    pair, setting = sys.argv[1], sys.argv[2]
    params = load_params()
    da, options = da_setting_config(params, setting, pair)
    src_name, tgt_name = pair.split("-")
    with Tracker(f"train_da@{pair}-{setting}", params={"pair": pair, "setting": setting, **da, **options}) as tr:
        # torch-heavy imports after the Tracker has started MLflow in its helper process (they overlap)
        from genda.data.store import digits_path, load_prepared
        from genda.runtime.device import get_device
        from genda.da.train import train_da

        from genda.runtime.checkpoint import StageRun

        src, tgt = load_prepared(digits_path(src_name)), load_prepared(digits_path(tgt_name))
        run = StageRun(Path(f"checkpoints/da/{pair}/{setting}"))
        keep = run.begin()  # an interrupted run of this stage: the seeds it finished are kept, not retrained
        for seed in da["seeds"]:
            train_da(setting, options, da, src, tgt, seed=seed, device=get_device(),
                     ckpt_dir=Path(f"checkpoints/da/{pair}/{setting}/seed{seed}"),
                     out_model=Path(f"models/da/{pair}/{setting}/seed{seed}.pt"), tracker=tr,
                     out_timing=Path(f"metrics/da/{pair}/{setting}/timing.json"),
                     compute=effective_compute(params, params["da"].get("compute")), keep_finished=keep)
        run.end()


if __name__ == "__main__":
    stage.run(main, distributed=True)
