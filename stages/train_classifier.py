"""Stage `train_classifier`: the digit classifier that scores generated digits (params: classifier).

Trained on the real prepared train split of `classifier.domain`; its real test accuracy, the ceiling of
any generated-digit accuracy, goes to metrics/classifier.json."""
from pathlib import Path

from genda.runtime import stage
from genda.runtime.records import write_metrics
from genda.config import load_params
from genda.runtime.tracking import Tracker


def main() -> None:
    params = load_params()
    cfg = params["classifier"]
    domain = cfg["domain"]
    with Tracker("train_classifier", params={**cfg, "seed": params["seed"]}) as tr:
        # torch-heavy imports after the Tracker has started MLflow in its helper process (they overlap)
        from genda.data.store import digits_path, load_prepared
        from genda.metrics.digit_classifier import accuracy_report, train_classifier
        from genda.data.tensors import predict_labels
        from genda.runtime.device import get_device

        data = load_prepared(digits_path(domain), "digits")
        device = get_device()
        model, _ = train_classifier(cfg, data["x_train"], data["y_train"], n_classes=10, seed=params["seed"],
                                    device=device, ckpt_dir=Path(f"checkpoints/classifier/{domain}"),
                                    out_model=Path(f"models/classifier/{domain}.pt"), tracker=tr,
                                    compute=params.get("compute"))
        rep = accuracy_report(predict_labels(model, data["x_test"], device, batch=500), data["y_test"], 10)
        m = {"domain": domain, "test_acc": rep["accuracy"], "per_class_test_acc": rep["per_class"],
             "n_test": rep["n"], "steps": cfg["steps"]}
        write_metrics(m, Path("metrics/classifier.json"))
        tr.log_metrics({"test_acc": rep["accuracy"]}, step=cfg["steps"])
    print(f"[train_classifier] {domain}: real test accuracy {rep['accuracy']:.4f} on {rep['n']} images")


if __name__ == "__main__":
    stage.run(main, distributed=True)
