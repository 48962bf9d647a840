"""Tiny runner shared by the stage scripts: user errors become one clear line and exit code 2."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

from genda.errors import GendaError


def run(main: Callable[[], None]) -> None:
    try:
        main()
    except GendaError as e:
        print(f"genda: error: {e}", file=sys.stderr)
        sys.exit(2)


def write_json(obj, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
