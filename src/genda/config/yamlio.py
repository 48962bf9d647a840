"""Reading a params YAML file: floats as YAML 1.2 (and DVC) read them, and the two tags of an overlay.

``!replace`` on a mapping (:class:`Replace`) and a bare ``!delete`` (:data:`DELETE`) mean something only in an
overlay (:mod:`genda.config.profiles`); everything else is plain YAML.
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml


class Replace(dict):
    """A mapping tagged ``!replace``: it replaces the base's mapping instead of merging into it."""


class _Delete:
    """The value of a key tagged ``!delete``: the composed file has no such key."""

    def __repr__(self) -> str:
        return "!delete"


DELETE = _Delete()


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where ``5e-05`` (no dot, as ``dvc exp run -S lr_d=5e-5`` writes it) is a
    string; YAML 1.2 and DVC read it as a float. This loader adds the 1.2 float forms (and the overlay tags)."""


_FLOAT_12 = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.VERBOSE)
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))
Yaml12Loader.add_constructor("!delete", lambda loader, node: DELETE)
Yaml12Loader.add_constructor("!replace", lambda loader, node: Replace(loader.construct_mapping(node, deep=True)))


def read_raw(path: str | Path) -> dict:
    """One YAML file as it is (an empty file: ``{}``); raises yaml.YAMLError."""
    return yaml.load(Path(path).read_text(), Loader=Yaml12Loader) or {}


class Yaml12Dumper(yaml.SafeDumper):
    """Writes what :class:`Yaml12Loader` reads back the same (a string such as ``"5e-05"`` stays quoted)."""


Yaml12Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def dump(data: dict) -> str:
    """A params dict as YAML, keys in their order, short lists inline."""
    return yaml.dump(data, Dumper=Yaml12Dumper, sort_keys=False, default_flow_style=None, width=120,
                     allow_unicode=True)
