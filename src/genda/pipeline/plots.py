"""Figures: t-SNE of DA features (scikit-learn) and loss curves (matplotlib, headless)."""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def tsne_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """[N,D] -> [N,2] with scikit-learn's exact-seeded Barnes-Hut t-SNE (PCA init)."""
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(5, (len(features) - 1) // 4)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                learning_rate="auto").fit_transform(features.astype(np.float32))


def tsne_figure(emb: np.ndarray, labels: np.ndarray, domains: np.ndarray, title: str, out: Path,
                domain_names=("source", "target")) -> Path:
    """Two panels: points coloured by class (0-9) and by domain."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    sc = axes[0].scatter(emb[:, 0], emb[:, 1], c=labels, cmap="tab10", s=5, vmin=-0.5, vmax=9.5)
    axes[0].set_title(f"{title}: by class")
    fig.colorbar(sc, ax=axes[0], ticks=range(10))
    for d, (name, col) in enumerate(zip(domain_names, ("tab:blue", "tab:red"))):
        m = domains == d
        axes[1].scatter(emb[m, 0], emb[m, 1], c=col, s=5, label=name, alpha=0.6)
    axes[1].legend(markerscale=3)
    axes[1].set_title(f"{title}: by domain")
    for a in axes:
        a.set_xticks([]); a.set_yticks([])
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def read_csv(path: Path) -> dict[str, np.ndarray]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def loss_figure(curves: dict[str, Path], keys: tuple[str, ...], out: Path, title: str) -> Path | None:
    """One line per (run, key) from loss CSVs; None if there is nothing to draw."""
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = 0
    for name, path in curves.items():
        if not Path(path).exists():
            continue
        data = read_csv(Path(path))
        for k in keys:
            if k in data and "step" in data:
                ax.plot(data["step"], data[k], label=f"{name} {k}")
                drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("step"); ax.set_title(title); ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def accuracy_curve_figure(curves: dict, out: Path, metric: str = "target_acc") -> Path | None:
    """Test accuracy against training wall time, one panel per pair (``curves``: pair -> a DataFrame with
    ``setting``, ``seed``, ``step``, ``wall_s`` and ``metric`` columns, or None; the pipeline's come from
    :func:`genda.train.timing.curve_table`), one line per setting: the mean over seeds at each evaluation step
    (thin lines: single seeds). None if no table has a row."""
    frames = {p: f for p, f in curves.items() if f is not None and len(f)}
    if not frames:
        return None
    fig, axes = plt.subplots(1, len(frames), figsize=(5 * len(frames), 3.6), squeeze=False)
    for ax, (pair, df) in zip(axes[0], frames.items()):
        for i, (setting, g) in enumerate(df.groupby("setting", sort=False)):
            colour = f"C{i}"
            for _, s in g.groupby("seed"):
                ax.plot(s["wall_s"] / 60, s[metric], color=colour, lw=0.6, alpha=0.35)
            mean = g.groupby("step")[["wall_s", metric]].mean()
            ax.plot(mean["wall_s"] / 60, mean[metric], color=colour, lw=1.8, marker=".", label=setting)
        ax.set_title(pair); ax.set_xlabel("training wall time (min)"); ax.set_ylabel(metric.replace("_", " "))
        ax.grid(alpha=0.3); ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
