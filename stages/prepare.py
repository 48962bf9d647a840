"""Stage `prepare`: dataset source -> compact uint8/int64 tensors under data/prepared/."""
from genda.runtime import stage
from genda.config import load_params, resolve_path


def main() -> None:
    # heavy imports inside main: with GENDA_WARM the stage runs in a warm worker that has them (genda.runtime.forkserver)
    from genda.data.prepare import prepare_all

    params = load_params()
    d = params["data"]
    attrs = d.get("face_attrs")
    prepare_all(d, root=str(resolve_path(d["root"])), seed=params["seed"],
                face_attrs=str(resolve_path(attrs)) if attrs else None)


if __name__ == "__main__":
    stage.run(main)
