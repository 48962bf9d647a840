"""Collect face_gan_probe.py JSON lines into one benchmark record and its quality-vs-wall-time figure.

    python benchmarks/ab/face_gan_sweep_summary.py /tmp/probes/*.json --meta meta.json \\
        --out benchmarks/results/sweep_face_gans_celeba_cpu.json

The record: ``meta`` (what, why, machine, date, command), every run (curve included) and per arm (gan + override)
the final FID and face rate of each seed and their means. The figure (same stem, .png): one row per GAN, FID and
face rate against training wall time, one colour per arm, one line style per seed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))


def arm_label(r: dict) -> str:
    """The run's overrides, e.g. ``ema_decay=0.999`` (``recipe``: none); a precision other than the profile's auto
    (bf16 here) is part of the arm."""
    s = ",".join(f"{k}={v}" for k, v in sorted(r["set"].items())) or "recipe"
    prec = r["compute"].get("precision", "auto")
    return s if prec == "auto" else f"{s},{prec}"


def arm_name(r: dict) -> str:
    return f"{r['gan']}[{arm_label(r)}]@{r['steps']}"


def figure(arms: dict[str, list[dict]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gans = sorted({rs[0]["gan"] for rs in arms.values()})
    fig, axes = plt.subplots(len(gans), 2, figsize=(13, 3.6 * len(gans)), squeeze=False)
    for row, gan in zip(axes, gans):
        for i, rs in enumerate(rs for rs in arms.values() if rs[0]["gan"] == gan):
            for r in rs:
                x = [c["wall_s"] / 60 for c in r["curve"]]
                for ax, key, scale in ((row[0], "fid", 1), (row[1], "face_rate", 100)):
                    ax.plot(x, [c[key] * scale for c in r["curve"]], color=f"C{i}", marker="o", ms=3,
                            ls=("-", "--", ":")[r["seed"] % 3], label=f"{arm_label(r)} @{r['steps']} s{r['seed']}")
        row[0].set_yscale("log")
        row[0].set_ylabel(f"{gan}: FID (log)")
        row[1].set_ylabel(f"{gan}: faces detected (%)")
        row[1].legend(fontsize=7, loc="lower right")
        for ax in row:
            ax.set_xlabel("training wall time (min, 1 thread)")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--meta", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    runs = [json.loads(line) for p in a.runs for line in p.read_text().splitlines() if line.strip()]
    arms: dict[str, list[dict]] = {}
    for r in sorted(runs, key=lambda r: (arm_name(r), r["seed"])):
        arms.setdefault(arm_name(r), []).append(r)
    summary = {}
    for name, rs in arms.items():
        row = {"seeds": [r["seed"] for r in rs]}
        for k in ("fid", "face_rate", "train_s"):
            v = [r[k] for r in rs]
            row[k] = v
            row[f"{k}_mean"] = round(statistics.mean(v), 4)
        summary[name] = row
    rec = {**json.loads(a.meta.read_text()), "arms": summary, "runs": runs}
    a.out.write_text(json.dumps(rec, indent=1) + "\n")
    figure(arms, a.out.with_suffix(".png"))
    for name, row in summary.items():
        print(f"{name:70s} FID {row['fid']} faces {row['face_rate']}")


if __name__ == "__main__":
    main()
