"""Params profiles: an overlay states only what differs from a base params file (``params.yaml``).

``configs/*.yaml`` are overlays; ``python -m genda.config compose configs/real_digits.yaml -o params.yaml`` writes
the full params file that DVC and the stages read. Composing ``base`` with an overlay:

* nested mappings merge key by key: the overlay's keys replace the base's, every other key of the base is kept
  (new keys go after the base's, replaced ones keep their place);
* a list or a scalar replaces the base's value; a key set to null sets null (it does not delete the key);
* ``face_gans`` and ``cond_gens`` (top level: maps of named entries, each one DVC foreach branch) are replaced whole
  when the overlay lists them, so a profile chooses which GANs run and each entry is exactly what the overlay says;
* ``key: !replace {...}`` replaces the base's mapping whole instead of merging into it (e.g. ``da.methods``, or
  ``da.compute: !replace {}`` for "no override");
* ``key: !delete`` removes the key from the base (for a key whose absence means something, e.g. an optional key
  whose consumer then uses its own default); deleting a key the base does not have is an error (a typo).

An overlay may name its base: ``extends: ../params.yaml`` (relative to the overlay's folder). Such a file can be
used wherever a params file can (``load_params``, ``GENDA_PARAMS``, ``python -m genda.config check``): it is
composed onto its base (which may itself be an overlay) when read. ``compose A B ...`` applies the overlays in order
onto ``--base`` (default: the first overlay's ``extends``, else the project's ``params.yaml``).
Several overlays compose left to right: ``compose configs/real_digits.yaml my_tweaks.yaml``.
The composed file is checked against the schema like any params file.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genda.config.yamlio import DELETE, Replace, read_raw
from genda.errors import ConfigError
from genda.runtime.paths import repo_root

EXTENDS = "extends"  # an overlay's base file, relative to the overlay's folder
REPLACED_WHOLE = ("face_gans", "cond_gens")  # top-level maps an overlay replaces instead of merging


def merge(base: dict, overlay: dict, *, where: str = "overlay") -> dict:
    """``overlay`` composed onto ``base`` (both unchanged; see the module docstring). ``where`` names the overlay
    in messages."""
    return _merge(copy.deepcopy(base), overlay, "", where)


def _merge(out: dict, overlay: dict, path: str, where: str) -> dict:
    for key, value in overlay.items():
        dotted = f"{path}.{key}" if path else str(key)
        if value is DELETE:
            if key not in out:
                raise ConfigError(f"{where}: '{dotted}: !delete' but the base has no key '{dotted}'")
            del out[key]
        elif (isinstance(value, dict) and not isinstance(value, Replace) and isinstance(out.get(key), dict)
              and not (not path and key in REPLACED_WHOLE)):
            _merge(out[key], value, dotted, where)
        else:
            out[key] = plain(value, dotted, where)
    return out


def plain(data: Any, path: str = "", where: str = "params") -> Any:
    """``data`` without the overlay tags (a ``!replace`` mapping as a dict); a ``!delete`` left here is an error."""
    if data is DELETE:
        raise ConfigError(f"{where}: '{path}: !delete' has no base to delete from (only an overlay may delete)")
    if isinstance(data, dict):
        return {k: plain(v, f"{path}.{k}" if path else str(k), where) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v, f"{path}[{i}]", where) for i, v in enumerate(data)]
    return data


def read_overlay(path: str | Path) -> tuple[dict, Path | None]:
    """An overlay file's keys (without ``extends``) and its base file (None when it names none)."""
    path = Path(path)
    data = read_raw(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: an overlay must be a mapping of params keys")
    base = data.pop(EXTENDS, None)
    if base is not None and not isinstance(base, str):
        raise ConfigError(f"{path}: '{EXTENDS}' = {base!r} must be the path of the base params file")
    return data, (Path(os.path.normpath(path.parent / base)) if base else None)


def read_params(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """The full params a file stands for, unvalidated: the file itself, or, when it ``extends`` a base, the file
    composed onto its base (read the same way)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"params file not found: {path}" + (f" (the base of {_seen[-1]})" if _seen else ""))
    overlay, base = read_overlay(path)
    if base is None:
        return plain(overlay, where=str(path))
    if base.resolve() in _seen or base.resolve() == path.resolve():
        raise ConfigError(f"{path}: '{EXTENDS}: {base}' makes a cycle; an overlay composes onto another file "
                          f"(compose it into params.yaml with: python -m genda.config compose {path} -o params.yaml)")
    return merge(read_params(base, (*_seen, path.resolve())), overlay, where=str(path))


def base_of(overlays: Sequence[str | Path], base: str | Path | None = None) -> Path:
    """The file ``compose`` starts from: ``base``, else the first overlay's ``extends``, else params.yaml."""
    if base is not None:
        return Path(base)
    first = read_overlay(overlays[0])[1] if overlays else None
    return first if first is not None else repo_root() / "params.yaml"


def compose(overlays: Sequence[str | Path], base: str | Path | None = None) -> dict:
    """``overlays`` composed in order onto :func:`base_of` them, unvalidated. The ``extends`` of the overlays
    themselves are not followed (the command line states the chain)."""
    out = read_params(base_of(overlays, base))
    for p in overlays:
        out = merge(out, read_overlay(p)[0], where=str(p))
    return out
