"""How a model is run, as one typed, frozen, validated object (``PredictOptions``).

Evaluation, ``upscale`` and the notebooks build it once, from keyword arguments or the command line; the predictor
resolver (:mod:`ignn_lab.engine.predictors`) checks that every option applies to the model it resolves, and the
result's provenance records it with its real types (``window: null`` is a global search, ``tile: 64`` an int).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Mapping

import torch

__all__ = ["DTYPES", "PredictOptions", "RUN_FIELDS"]

#: dtype names accepted (aliases map onto them): float64 for exact comparisons; half types run under CUDA autocast.
DTYPES = ("float32", "float64", "bfloat16", "float16")
_DTYPE_ALIASES = {"fp32": "float32", "fp64": "float64", "bf16": "bfloat16", "fp16": "float16", "half": "float16",
                  "double": "float64", "float": "float32"}
#: The options that say how any network runs (the others, ``switches``, change what a model computes).
RUN_FIELDS = ("device", "dtype", "tile", "self_ensemble", "memory_budget_gb", "overlap")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _plain(value: Any, where: str) -> None:
    """Switch values are JSON data (recorded in results.json as they are)."""
    if value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"option {where}={value!r}: a {type(value).__name__} is not accepted; switches take "
                    "None, bool, int, finite float, str or lists of them")


@dataclass(frozen=True)
class PredictOptions:
    """Options of a predictor. Defaults run a model as it is: CPU, float32, untiled unless memory says otherwise.

    Attributes:
        device: ``cpu`` or ``cuda[:N]`` (stored canonical, e.g. ``cuda:0`` stays ``cuda:0``).
        dtype: one of :data:`DTYPES` (``fp16``, ``bf16`` … are accepted and stored under these names).
        tile: LR tile side including overlap (networks), or None (chosen from the memory budget).
        self_ensemble: ×8 flip/transpose ensemble (networks).
        memory_budget_gb: activation memory for one tile (networks); None: 4 GB on CPU, half the GPU's memory.
        overlap: LR pixels of context per inner tile side, ``"exact"``, or None (networks).
        switches: what the model computes, only as given (``k``, ``window`` with None = global search,
            ``embedding``, ``weighting``, ``adapn``, ``cross_scale`` … for graphagg-star; config fields such as
            ``window`` or ``knn_backend`` for a network). Whether a switch applies is decided by the model.
    """

    device: str = "cpu"
    dtype: str = "float32"
    tile: int | None = None
    self_ensemble: bool = False
    memory_budget_gb: float | None = None
    overlap: int | Literal["exact"] | None = None
    switches: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "device", _device(self.device))
        set_(self, "dtype", _dtype(self.dtype))
        if self.tile is not None and (not _is_int(self.tile) or self.tile < 1):
            raise ValueError(f"tile must be a positive int (LR pixels per tile side) or None, got {self.tile!r}")
        if not isinstance(self.self_ensemble, bool):
            raise TypeError(f"self_ensemble must be True or False, got {self.self_ensemble!r}")
        b = self.memory_budget_gb
        if b is not None and (isinstance(b, bool) or not isinstance(b, (int, float)) or not (0 < b < math.inf)):
            raise ValueError(f"memory_budget_gb must be a positive number or None, got {b!r}")
        ov = self.overlap
        if not (ov is None or ov == "exact" or (_is_int(ov) and ov >= 0)):
            raise ValueError(f"overlap must be an int ≥ 0 (LR pixels), 'exact' or None, got {ov!r}")
        if not isinstance(self.switches, Mapping):
            raise TypeError(f"switches must be a mapping of name → value, got {type(self.switches).__name__}")
        for k, v in self.switches.items():
            if not isinstance(k, str) or not k.isidentifier():
                raise ValueError(f"option names are identifiers, got {k!r}")
            _plain(v, k)
        set_(self, "switches", MappingProxyType(dict(self.switches)))
        if self.dtype in ("bfloat16", "float16") and not self.device.startswith("cuda"):
            raise ValueError(f"dtype={self.dtype} runs through CUDA autocast and needs a CUDA device, got "
                             f"device={self.device}; on CPU use float32 (default) or float64")

    @classmethod
    def from_kwargs(cls, **options: Any) -> PredictOptions:
        """The run options by name (:data:`RUN_FIELDS`); every other keyword is a switch (None for ``device`` or
        ``dtype`` means the default)."""
        run = {k: options.pop(k) for k in RUN_FIELDS if k in options}
        for k in ("device", "dtype"):
            if k in run and run[k] is None:
                del run[k]
        return cls(**run, switches=options)

    def given(self) -> list[str]:
        """The names of the options that differ from the defaults, switches included."""
        base = PredictOptions()
        return [k for k in RUN_FIELDS if getattr(self, k) != getattr(base, k)] + list(self.switches)

    def run(self) -> dict[str, Any]:
        """The run options as keyword arguments."""
        return {k: getattr(self, k) for k in RUN_FIELDS}

    def check_applies(self, model: str, accepted: tuple[str, ...] | list[str], why: str) -> None:
        """Raise ValueError naming every given option outside ``accepted``.

        Args:
            model: the model's name, as the message says it.
            accepted: the options this model takes.
            why: what the refused options are for (``they apply to networks``).
        """
        bad = [k for k in self.given() if k not in accepted]
        if bad:
            shown = ", ".join(f"{k}={self._value(k)!r}" for k in bad)
            takes = ", ".join(accepted) if accepted else "no options"
            verb = "does" if len(bad) == 1 else "do"
            raise ValueError(f"{shown} {verb} not apply to {model} ({why}); {model} takes {takes}")

    def _value(self, name: str) -> Any:
        return self.switches[name] if name in self.switches else getattr(self, name)

    def record(self) -> dict[str, Any]:
        """JSON-ready, with real types: the run options and the given switches."""
        return {**self.run(), **dict(self.switches)}

    def torch_device(self) -> torch.device:
        """The device, checked to exist in this torch build."""
        dev = torch.device(self.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r} was asked for, but this torch build sees no CUDA device; "
                             "use 'cpu'")
        if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={self.device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"cuda:0 … cuda:{torch.cuda.device_count() - 1}")
        return dev

    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def replace(self, **changes: Any) -> PredictOptions:
        """A copy with run options changed."""
        return dataclasses.replace(self, **changes)


def _device(device: Any) -> str:
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return str(dev)


def _dtype(dtype: Any) -> str:
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).removeprefix("torch.")
    if isinstance(dtype, str):
        name = _DTYPE_ALIASES.get(dtype.lower(), dtype.lower())
        if name in DTYPES:
            return name
    raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
