"""The report's quality-versus-cost figure: each face generator's FID and face-detection rate against the wall
time of its training stage (issue 34: compare methods at equal cost)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def cost_figure(points: dict[str, dict], out: Path, title: str = "face generators at their training cost") -> Path | None:
    """Quality against training wall time, one marker per method on shared axes: FID (lower is better) and the
    face-detection rate. ``points``: ``{method: {"wall_s", "fid", "face_rate"}}`` (methods missing any of the three
    are left out); None if there is nothing to draw."""
    pts = {k: p for k, p in points.items() if all(p.get(f) is not None for f in ("wall_s", "fid", "face_rate"))}
    if not pts:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "fid", "FID ↓"), (axes[1], "face_rate", "faces detected ↑")):
        for i, (name, p) in enumerate(pts.items()):
            x, y = p["wall_s"] / 60.0, p[key] * (100.0 if key == "face_rate" else 1.0)
            ax.scatter([x], [y], color=f"C{i % 10}", s=40)
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ys = [p[key] for p in pts.values()]
        if key == "fid" and min(ys) > 0 and max(ys) / min(ys) > 10:  # e.g. 1.5 next to 150: a log axis
            ax.set_yscale("log")
        ax.set_xlabel("training wall time (min)")
        ax.set_ylabel(label + (" (%)" if key == "face_rate" else ""))
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
