"""Command line of the params profiles.

    python -m genda.config compose OVERLAY [OVERLAY ...] [--base FILE] [-o OUT]
        the overlays composed in order onto the base (default: the first overlay's `extends`, else params.yaml),
        validated, as a full params file: to stdout, or written atomically to OUT (so `-o params.yaml` with the
        base params.yaml is safe)
    python -m genda.config check [FILE] [--no-paths]
        validate a params file or an overlay (default: $GENDA_PARAMS, else params.yaml); prints one line

A params error prints one line to stderr and exits 2, as a stage does.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from genda.config.load import load_params, validate
from genda.config.profiles import base_of, compose
from genda.config.yamlio import dump
from genda.errors import ConfigError
from genda.runtime.paths import repo_root


def _compose(args: argparse.Namespace) -> None:
    base = base_of(args.overlays, args.base)
    if args.output is None and _is_stdout(base):
        raise ConfigError(f"stdout is the base {base}, which the shell emptied before it could be read (`> {base}`); "
                          f"restore it (git checkout {base}) and write with -o {base} instead")
    try:
        params = validate(compose(args.overlays, base), check_paths=False)  # the data may be on another machine
    except ConfigError as e:
        raise ConfigError(f"{' + '.join(map(str, args.overlays))} onto {base}: {e}") from None
    text = (f"# Composed by: python -m genda.config compose {' '.join(map(str, args.overlays))} --base {base}\n"
            f"# Edit the overlays and compose again rather than editing this file.\n" + dump(params))
    if args.output is None:
        sys.stdout.write(text)
        return
    out = Path(args.output)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent.resolve())
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"{out}: {_summary(params)}")


def _is_stdout(path: Path) -> bool:
    try:
        out, f = os.fstat(sys.stdout.fileno()), os.stat(path)
    except (OSError, ValueError):
        return False
    return (out.st_dev, out.st_ino) == (f.st_dev, f.st_ino)


def _check(args: argparse.Namespace) -> None:
    params = load_params(args.file, check_paths=not args.no_paths)
    name = args.file or os.environ.get("GENDA_PARAMS") or repo_root() / "params.yaml"
    print(f"{name}: valid; {_summary(params)}")


def _summary(p: dict) -> str:
    da = len(p["da"]["pairs"]) * len(p["da"]["settings"]) * len(p["da"]["seeds"])
    return (f"data {p['data']['source']} ({', '.join(p['data']['domains'])}), {len(p['face_gans'])} face GAN(s), "
            f"{da} DA training(s), {len(p['cond_gens'])} conditional generator(s)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m genda.config", description="params profiles: compose and check")
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compose", help="overlays onto a base -> a full, validated params file")
    c.add_argument("overlays", nargs="+", type=Path)
    c.add_argument("--base", type=Path, default=None, help="default: the first overlay's extends, else params.yaml")
    c.add_argument("-o", "--output", type=Path, default=None, help="write here (atomically) instead of stdout")
    c.set_defaults(run=_compose)
    k = sub.add_parser("check", help="validate a params file or an overlay; one line")
    k.add_argument("file", nargs="?", type=Path, default=None)
    k.add_argument("--no-paths", action="store_true", help="do not check that data.root etc. exist")
    k.set_defaults(run=_check)
    args = ap.parse_args(argv)
    try:
        args.run(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
