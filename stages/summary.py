"""Stage `summary`: the headline numbers of the run, one small JSON per method (summary/metrics/, the DVC metrics)
and one Markdown table (summary/table.md, the README's results table)."""
from genda.config import load_params
from genda.runtime import stage


def main() -> None:
    from genda.pipeline.summary import write

    rows = write(load_params())
    print(f"[summary] {len(rows)} rows -> summary/metrics, summary/table.md")


if __name__ == "__main__":
    stage.run(main, record_wall=False)  # reads walls/ (genda.runtime.walls)
