"""One figure of training curves from several runs' curve CSVs (``evaluate_da``'s ``metrics/da/curves/<pair>.csv``
or ``evaluate_cond``'s ``metrics/cond/curves/<name>.csv``): one panel per ``TITLE=CSV``.

    python benchmarks/tools/curves_figure.py OUT.png "MNIST-M->USPS=WORKDIR/mnist/metrics/da/curves/mnistm-usps.csv" ... \\
        [--metric target_acc]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))


def main() -> None:
    from genda.pipeline.plots import accuracy_curve_figure
    from genda.train.timing import curve_table

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("panels", nargs="+", metavar="TITLE=CSV")
    ap.add_argument("--metric", default="target_acc")
    a = ap.parse_args()
    curves = dict(p.split("=", 1) for p in a.panels)
    missing = [c for c in curves.values() if not Path(c).exists()]
    if missing:
        raise SystemExit(f"curve CSV not found: {', '.join(missing)}")
    # wall times joined from the runs' timing files (genda.train.timing) when the CSV has none
    if accuracy_curve_figure({t: curve_table(Path(c)) for t, c in curves.items()}, a.out, metric=a.metric) is None:
        raise SystemExit("no curve rows in any CSV")
    print(a.out)


if __name__ == "__main__":
    main()
