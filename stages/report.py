"""Stage `report`: one Markdown page with every metric table and figure (report/index.md)."""
from genda import stage
from genda.config import load_params
from genda.report import build_report


def main() -> None:
    out = build_report(load_params())
    print(f"[report] {out}")


if __name__ == "__main__":
    stage.run(main)
