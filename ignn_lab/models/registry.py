"""The single model registry (STYLE §7): typed builders registered by name, duplicates rejected.

The model modules register their builders when imported; ``ignn_lab/models/__init__.py`` imports them, and
Python runs a package's ``__init__`` before any of its modules, so the registry is complete whichever module a
caller imports (and this module imports none of them: no cycle).
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import torch.nn as nn

Builder = Callable[..., nn.Module]
B = TypeVar("B", bound=Builder)

_REGISTRY: dict[str, Builder] = {}

__all__ = ["build", "get_model", "list_models", "register_model"]


def register_model(name: str) -> Callable[[B], B]:
    """Decorator registering ``builder(scale: int, **overrides) -> nn.Module`` under ``name``.

    Raises:
        ValueError: when ``name`` is already registered.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"a model name must be a non-empty str, got {name!r}")

    def deco(fn: B) -> B:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered (by {_REGISTRY[name].__qualname__})")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def build(name: str, scale: int, **overrides: Any) -> nn.Module:
    """Build a registered network with fresh weights.

    Args:
        name: a name from :func:`list_models` (``edsr``, ``edsr-baseline``, ``edsr-lite``, ``ignn``,
            ``ignn-lite``, ``nonlocal``, ``nonlocal-lite``).
        scale: 2, 3 or 4.
        **overrides: config fields to change, e.g. ``n_feats=32``, ``k=3``, ``adapn=False`` (graph switches
            may be passed flat). Unknown keys raise ValueError.

    Returns:
        An ``nn.Module`` called as ``model(lr, son=None)`` on B×3×H×W float in [0, 1], returning B×3×sH×sW
        (unclamped), with ``model.scale``, ``model.config`` and ``model.needs_son``.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](scale, **overrides)


def get_model(name: str, scale: int, **overrides: Any) -> nn.Module:
    """Alias of :func:`build` (torchvision's name)."""
    return build(name, scale, **overrides)
