"""Stage `fid_reference@<kind>` (faces | digits): FID/KID features of the real reference split and of the held-out
real images of the floor (faces: also the faces detected in 500 held-out images), extracted once ->
features/fid/<kind>.pt, shared by every evaluate_gan / evaluate_cond."""
import sys
from pathlib import Path

from genda.runtime import stage
from genda.config import load_params, resolve_path
from genda.errors import ConfigError
from genda.runtime.tracking import Tracker

KINDS = ("faces", "digits")


def main() -> None:
    kind = sys.argv[1]
    if kind not in KINDS:
        raise ConfigError(f"fid_reference: unknown data kind {kind!r}; valid: {', '.join(KINDS)}")
    params = load_params()
    ev = params["evaluate"]
    with Tracker(f"fid_reference@{kind}", params={"kind": kind, **ev}) as tr:
        # torch-heavy imports after the Tracker has started MLflow in its helper process (they overlap)
        from genda.data.store import digits_path, faces_path, load_prepared
        from genda.metrics.fid_reference import build_reference, floor_size, real_face_counts, save_reference
        from genda.metrics.fidelity import choose_extractor
        from genda.metrics.gan_eval import face_reference
        from genda.runtime.device import get_device

        if kind == "faces":
            ref, held = face_reference(load_prepared(faces_path(), kind="faces"), ev["fid_reference"])
            data = f"faces:{ev['fid_reference']}"
        else:
            domain = params["cond"]["domain"]
            d = load_prepared(digits_path(domain), "digits")
            ref, held, data = d["x_test"], d["x_train"], f"digits:{domain}"
        weights = str(resolve_path(ev["inception_weights"])) if ev["inception_weights"] else None
        choice = choose_extractor(weights, allow_fallback=ev["allow_fallback_extractor"])
        cache = build_reference(ref, held, choice, data=data, n_held_out=floor_size(params),
                                batch_size=ev["batch_size"], device=str(get_device()))
        if kind == "faces":
            try:
                cache.update(real_face_counts(held))   # face_rate_real of every face evaluation
            except ImportError as e:   # no OpenCV cascade: the evaluations record why
                print(f"[fid_reference] no face counts: {e}")
        save_reference(cache, Path(f"features/fid/{kind}.pt"))
        tr.set_tags({"fid_extractor": choice.name, "data": data})
        print(f"[fid_reference] {data}: {len(ref)} reference + {min(len(held), floor_size(params))} held-out "
              f"images, extractor {choice.name} ({choice.weights})")


if __name__ == "__main__":
    stage.run(main)
