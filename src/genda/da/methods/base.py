"""Base class, option handling and registry shared by all domain-adaptation methods.

A method is an ``nn.Module`` that owns its networks and its losses. The generic trainer calls:

* ``loss, logs = method.training_step(xs, ys, xt, progress)`` with a labelled batch ``xs`` [B_s, 3, 28, 28],
  ``ys`` [B_s] (long), an unlabelled target batch ``xt`` [B_t, 3, 28, 28] (None for methods whose
  ``needs_target`` is False) and the training progress ``p`` in [0, 1]; then ``loss.backward()``,
  ``optimizer.step()`` and ``method.after_optimizer_step()``;
* ``method.classify(x)`` -> logits [B, n_classes] and ``method.embed(x)`` -> features [B, D] at test time
  (after ``method.eval()``);
* optionally ``method.param_groups(lr)`` for per-module learning rates.

Options come from params (``**options``); unknown names or wrong types raise :class:`ConfigError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genda.errors import ConfigError

__all__ = ["DAMethod", "METHODS", "register", "build_method", "to_floats", "accuracy"]

METHODS: dict[str, type["DAMethod"]] = {}


def register(cls: type["DAMethod"]) -> type["DAMethod"]:
    """Class decorator adding ``cls`` to :data:`METHODS` under ``cls.name``."""
    if not cls.name or cls.name in METHODS:
        raise ValueError(f"method name {cls.name!r} is empty or already registered")
    METHODS[cls.name] = cls
    return cls


def build_method(name: str, n_classes: int = 10, **options: Any) -> "DAMethod":
    """Instantiate the method registered as ``name``; unknown name -> ConfigError listing valid names."""
    if name not in METHODS:
        raise ConfigError(f"unknown domain-adaptation method {name!r}; valid methods: {', '.join(sorted(METHODS))}")
    return METHODS[name](n_classes=n_classes, **options)


def to_floats(values: Mapping[str, Tensor | float | int]) -> dict[str, float]:
    """Convert a mapping of 0-d tensors / numbers to Python floats with a single device sync."""
    tensor_keys = [k for k, v in values.items() if isinstance(v, Tensor)]
    out = {k: float(v) for k, v in values.items() if not isinstance(v, Tensor)}
    if tensor_keys:
        parts = [values[k].detach().float().reshape(()) for k in tensor_keys]  # type: ignore[union-attr]
        stacked = torch.stack(parts).tolist()
        out.update(zip(tensor_keys, stacked))
    return {k: out[k] for k in values}


def accuracy(logits: Tensor, y: Tensor) -> Tensor:
    """Top-1 accuracy as a 0-d tensor: logits [B, C], y [B]."""
    return (logits.detach().argmax(dim=1) == y).float().mean()


def _type_name(t: Any) -> str:
    if isinstance(t, tuple):
        return " or ".join("null" if x is type(None) else x.__name__ for x in t)
    return t.__name__


class DAMethod(nn.Module):
    """Base class of all domain-adaptation methods.

    Class attributes:
        name: registry key.
        uses_target_labels: True if ``training_step`` needs target labels (none of ours does).
        needs_target: True if ``training_step`` needs the unlabelled target batch ``xt``.
        defaults: option name -> default value; the default's type is the accepted type (an int is
            accepted for a float option), unless :attr:`option_types` overrides it.
        option_types: option name -> type or tuple of types (e.g. ``(int, type(None))``).
        log_keys: keys of the logs dict returned by ``training_step`` (always the same set).
    """

    name: ClassVar[str] = ""
    uses_target_labels: ClassVar[bool] = False
    needs_target: ClassVar[bool] = False
    defaults: ClassVar[Mapping[str, Any]] = {}
    option_types: ClassVar[Mapping[str, Any]] = {}
    log_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, n_classes: int = 10, **options: Any) -> None:
        super().__init__()
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ConfigError(f"method {self.name!r}: n_classes must be an integer >= 2, got {n_classes!r}")
        self.n_classes = n_classes
        self.options: dict[str, Any] = self._resolve_options(options)
        self.check_options(self.options)

    # ---------------------------------------------------------------- options
    @classmethod
    def _resolve_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(cls.defaults))
        if unknown:
            valid = ", ".join(sorted(cls.defaults)) or "(none)"
            raise ConfigError(f"method {cls.name!r}: unknown option(s) {', '.join(unknown)}; valid options: {valid}")
        resolved = dict(cls.defaults)
        for key, value in options.items():
            default = cls.defaults[key]
            expected = cls.option_types.get(key, type(default))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            ok = isinstance(value, expected)
            if ok and isinstance(value, bool) and expected in (int, float):
                ok = False
            if not ok:
                raise ConfigError(
                    f"method {cls.name!r}: option {key} must be {_type_name(expected)}, "
                    f"got {type(value).__name__} {value!r}"
                )
            resolved[key] = value
        return resolved

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Range checks of subclasses; raise ConfigError via :meth:`_require`."""

    def _require(self, condition: bool, key: str, rule: str) -> None:
        if not condition:
            raise ConfigError(f"method {self.name!r}: option {key} must be {rule}, got {self.options[key]!r}")

    # ---------------------------------------------------------------- API
    def training_step(
        self, xs: Tensor, ys: Tensor, xt: Tensor | None, progress: float
    ) -> tuple[Tensor, dict[str, float]]:
        """One forward pass and loss. Returns (scalar loss with graph, logs with keys :attr:`log_keys`)."""
        raise NotImplementedError

    def classify(self, x: Tensor) -> Tensor:
        """Test-time network: [B, 3, 28, 28] -> logits [B, n_classes]."""
        raise NotImplementedError

    def embed(self, x: Tensor) -> Tensor:
        """Features used for t-SNE: [B, 3, 28, 28] -> [B, D]."""
        raise NotImplementedError

    def after_optimizer_step(self) -> None:
        """Hook run after every ``optimizer.step()`` (e.g. EMA teacher update). Default: nothing."""

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(x)

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters that receive gradients (excludes e.g. an EMA teacher)."""
        return (p for p in self.parameters() if p.requires_grad)

    def rng_state(self) -> dict:
        """Random state the method keeps outside the global generators (e.g. its own augmentation generator), for
        the trainer's checkpoint: a resumed run must continue the same draws. Default: none."""
        return {}

    def set_rng_state(self, state: dict) -> None:
        """Restore what :meth:`rng_state` returned."""

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups; default: all trainable parameters at ``lr``.

        Each group carries ``base_lr`` (its learning rate at ``lr``) so that an annealing schedule can
        set ``group["lr"] = schedule(group["base_lr"])``.
        """
        return [{"params": list(self.trainable_parameters()), "lr": lr, "base_lr": lr}]

    # ---------------------------------------------------------------- helpers
    def _require_target(self, xt: Tensor | None) -> Tensor:
        if xt is None:
            raise ValueError(f"method {self.name!r} needs an unlabelled target batch xt, got None")
        return xt

    @staticmethod
    def _cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits, y)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, n_classes={self.n_classes}, options={self.options}"
