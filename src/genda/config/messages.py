"""pydantic's ValidationError -> one :class:`~genda.errors.ConfigError` that names the dotted key and what is allowed.

pydantic reports every mistake of a file at once, in a multi-line dump; a user gets the first one, in the order a
reader of the file meets them (in each section unknown keys first, then the schema's keys in order, entries of a
named map in the file's order), phrased as, e.g.::

    params: unknown key 'gan.stepz' (did you mean 'steps'?); valid keys here: arch, batch_size, ...
    params: 'gan.loss' = 'wgan' is not a valid choice; valid: bce, lsgan, wgan_gp, hinge
    params: 'lr_d' = True has the wrong type; expected float
    params: 'label_smoothing' = 0.9 is above its maximum 0.5
"""
from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from genda.config.schema import Invalid, Params
from genda.errors import ConfigError


def config_error(exc: ValidationError, data: Any) -> ConfigError:
    """The first of ``exc``'s errors (``data``: the validated input, for the order of its keys) as a ConfigError."""
    located = [(_locate(e["loc"], data), e) for e in exc.errors()]
    (path, ann, parent, _), err = min(located, key=lambda x: x[0][3])
    return ConfigError("params: " + _message(err, path, ann, parent))


def _message(err: dict, path: str, ann: Any, parent: type[BaseModel] | None) -> str:
    kind, value, ctx = err["type"], err["input"], err.get("ctx") or {}
    if isinstance(ctx.get("error"), Invalid):
        return str(ctx["error"]).replace("{path}", path)
    if kind == "extra_forbidden":
        fields = list(parent.model_fields) if parent else []
        hint = difflib.get_close_matches(str(err["loc"][-1]), fields, n=1)
        sug = f" (did you mean '{hint[0]}'?)" if hint else ""
        return f"unknown key '{path}'{sug}; valid keys here: {', '.join(sorted(fields))}"
    if kind == "missing":
        return f"missing key '{path}'; expected {describe(ann)}"
    typ, _ = _bare(ann)
    if kind in ("model_type", "model_attributes_type") and _is_model(typ):
        return f"'{path or '<root>'}' must be a mapping of keys {sorted(typ.model_fields)}"
    if get_origin(typ) is list:  # a list of items (not a bare `list` value such as noisy_real)
        if kind == "too_short":
            return f"'{path}' needs at least {ctx['min_length']} item(s)"
        return f"'{path}' must be a list of {describe(get_args(typ)[0])}"
    if value is None:
        return f"'{path}' must not be empty (expected {describe(ann)})"
    if kind == "literal_error":
        choices = get_args(typ)
        if isinstance(value, type(choices[0])) and not isinstance(value, bool):
            return f"'{path}' = {value!r} is not a valid choice; valid: {', '.join(map(str, choices))}"
    # YAML gives ints for "2": an int is a fine float, and shown as one
    shown = float(value) if typ is float and isinstance(value, int) and not isinstance(value, bool) else value
    if kind in ("greater_than_equal", "greater_than"):
        return f"'{path}' = {shown!r} is below its minimum {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"'{path}' = {shown!r} is above its maximum {ctx.get('le', ctx.get('lt'))}"
    if kind.endswith("_type") or kind == "literal_error":
        return f"'{path}' = {value!r} has the wrong type; expected {describe(ann)}"
    return f"'{path}' = {value!r}: {err['msg']}"


def describe(ann: Any) -> str:
    """What a field takes, in words: ``int``, ``float or null``, ``str in {bce, lsgan}``, ``list of int``."""
    typ, nullable = _bare(ann)
    if get_origin(typ) is Literal:
        choices = get_args(typ)
        out = f"{type(choices[0]).__name__} in {{{', '.join(map(str, choices))}}}"
    elif get_origin(typ) is list:
        out = f"list of {describe(get_args(typ)[0])}"
    elif get_origin(typ) is dict:
        out = "mapping"
    elif _is_model(typ):
        out = "section"
    else:
        out = getattr(typ, "__name__", str(typ))
    return out + " or null" if nullable else out


def _bare(ann: Any) -> tuple[Any, bool]:
    """``ann`` without Annotated[...] and Optional[...]; whether it was Optional."""
    nullable = False
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            ann = get_args(ann)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(ann) if a is not type(None)]
            nullable = nullable or len(args) < len(get_args(ann))
            ann = args[0]
        else:
            return ann, nullable


def _is_model(typ: Any) -> bool:
    return isinstance(typ, type) and issubclass(typ, BaseModel)


def _locate(loc: tuple, data: Any) -> tuple[str, Any, type[BaseModel] | None, list[tuple[int, ...]]]:
    """For an error at ``loc``: the dotted path (list items as ``[i]``), the field's type, the section it is in, and
    its place in reading order (a list of int tuples: unknown keys of a section before its fields, fields in schema
    order, entries of a map and items of a list in the file's order; a map's key before its value)."""
    ann: Any = Params
    path, parent, order, node = "", None, [], data
    for i, seg in enumerate(loc):
        if seg == "[key]":
            break
        typ, _ = _bare(ann)
        keys = list(node) if isinstance(node, dict) else []
        if _is_model(typ):
            parent = typ
            fields = list(typ.model_fields)
            if seg in fields:
                order.append((1, fields.index(seg)))
                ann = typ.model_fields[seg].annotation
            else:  # an unknown key
                order.append((0, keys.index(seg) if seg in keys else 0))
                ann = None
        elif get_origin(typ) is dict:
            key_error = i + 1 < len(loc) and loc[i + 1] == "[key]"
            order.append((keys.index(seg) if seg in keys else 0, 0 if key_error else 1))
            ann = get_args(typ)[0 if key_error else 1]
        elif get_origin(typ) is list and isinstance(seg, int):
            order.append((seg,))
            path += f"[{seg}]"
            ann = get_args(typ)[0]
            node = node[seg] if isinstance(node, list) and seg < len(node) else None
            continue
        else:
            order.append((0,))
            ann = None
        path = f"{path}.{seg}" if path else str(seg)
        node = node.get(seg) if isinstance(node, dict) else None
    return path, ann, parent, order
