"""A sample folder's manifest: the md5 of every file in it, written by the sampling stage.

The evaluation stages depend on the manifest (one small file) instead of the folder of 500-1,000 PNGs, so DVC
hashes each sample folder once per command -- as the sampling stage's output -- and not a second time as the
evaluation's dependency (the default's 11 folders: ~0.35 s of a no-op ``dvc repro`` on 2 cores). The manifest
pins the folder's content, and the evaluation checks every file against it before it scores anything: a file
that differs, is missing or is not listed is a DataError naming it, never a score of other images.

Format: ``{"files": {"<path relative to the folder>": "<md5>", ...}}`` (sorted; the manifest itself is not
listed when it lies inside the folder, nor are hidden files: DVC writes a ``.gitignore`` beside the outputs it
tracks, before or after the stage ran, and it is no sample).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from genda.errors import DataError

MANIFEST = "manifest.json"


def folder_md5s(folder: Path, skip: Path | None = None) -> dict[str, str]:
    """``{relative posix path: md5}`` of every file under ``folder`` except ``skip`` and hidden files (``.*``)."""
    folder = Path(folder)
    skip = Path(skip).resolve() if skip is not None else None
    return {p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.resolve() != skip and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def write_manifest(folder: Path, manifest: Path) -> int:
    """Write the manifest of ``folder`` to ``manifest``; returns the number of files listed."""
    files = folder_md5s(folder, skip=manifest)
    Path(manifest).parent.mkdir(parents=True, exist_ok=True)
    Path(manifest).write_text(json.dumps({"files": files}, indent=0, sort_keys=True) + "\n")
    return len(files)


def verify_manifest(folder: Path, manifest: Path) -> int:
    """Check that ``folder`` holds exactly the files of ``manifest`` with their md5s; returns their number.
    DataError naming the manifest when it is missing or unreadable, else the first file that differs, is
    missing or is not listed (rerun the sampling stage: ``dvc repro``)."""
    try:
        want = json.loads(Path(manifest).read_text())["files"]
        if not isinstance(want, dict):
            raise TypeError("'files' is not a mapping")
    except FileNotFoundError:
        raise DataError(f"{manifest}: missing; the sampling stage writes it beside the samples (`dvc repro`)") from None
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f'{manifest}: not a sample manifest ({type(e).__name__}: {e}); expected {{"files": '
                        '{"<file>": "<md5>", ...}}') from None
    have = folder_md5s(folder, skip=manifest)
    for name in sorted(set(want) | set(have)):
        if name not in have:
            raise DataError(f"{Path(folder) / name}: listed in {manifest} but missing; rerun the sampling stage")
        if name not in want:
            raise DataError(f"{Path(folder) / name}: not in {manifest} (a file the sampling stage did not write); "
                            "remove it or rerun the sampling stage")
        if have[name] != want[name]:
            raise DataError(f"{Path(folder) / name}: its content differs from {manifest} (changed after sampling); "
                            "rerun the sampling stage")
    return len(want)
