"""Stage `report`: one Markdown page with every metric table and figure (report/index.md)."""
from genda.runtime import stage
from genda.config import load_params


def main() -> None:
    # heavy imports inside main: with GENDA_WARM the stage runs in a warm worker that has them (genda.runtime.forkserver)
    from genda.pipeline.report import build_report

    out = build_report(load_params())
    print(f"[report] {out}")


if __name__ == "__main__":
    stage.run(main, record_wall=False)  # runs after the summary read walls/
