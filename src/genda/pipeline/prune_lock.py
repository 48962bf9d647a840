"""Drop the ``dvc.lock`` entries of stages that left ``dvc.yaml``.

DVC adds a stage's entry to ``dvc.lock`` when the stage runs and never removes it, so a method or DA pair dropped
from ``params.yaml`` (a foreach branch gone) leaves a dead entry that every DVC command reads and every stage run
rewrites. After such a change:

    python -m genda.pipeline.prune_lock            # the default profile (dvc.yaml / dvc.lock here)
    python -m genda.pipeline.prune_lock real       # a profile's folder

It prints what it dropped; the entries of the stages that remain are kept byte for byte in their order.
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml


def pipeline_stages(folder: Path) -> set[str]:
    """The stage names (``name`` or ``name@key``) that ``folder/dvc.yaml`` defines, as DVC resolves them."""
    from dvc.repo import Repo

    folder = Path(folder).resolve()
    with Repo(str(folder)) as repo:
        return {s.addressing.split(":")[-1] for s in repo.index.stages
                if Path(s.dvcfile.path).resolve() == folder / "dvc.yaml"}


def prune(folder: Path, stages: set[str] | None = None) -> list[str]:
    """Rewrite ``folder/dvc.lock`` without the entries of stages not in ``stages`` (default: the pipeline's);
    returns the names dropped (nothing written when none)."""
    path = Path(folder) / "dvc.lock"
    lock = yaml.safe_load(path.read_text())
    keep = pipeline_stages(folder) if stages is None else stages
    dead = [name for name in lock.get("stages", {}) if name not in keep]
    if dead:
        lock["stages"] = {k: v for k, v in lock["stages"].items() if k in keep}
        path.write_text(yaml.safe_dump(lock, sort_keys=False, width=1000))
    return dead


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0]) if argv else Path(".")
    dead = prune(folder)
    print(f"{folder / 'dvc.lock'}: dropped {len(dead)} entries" + (": " + ", ".join(dead) if dead else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
