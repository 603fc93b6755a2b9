"""The training configuration: one frozen, typed :class:`TrainConfig`, and the named configs shipped with the kit.

A config file is JSON: any :class:`TrainConfig` field, plus ``"base"`` (a shipped config name or a path to
another file, relative to this one) whose values it overrides, and ``"description"``. ``load_config`` resolves
the chain, applies ``--set key=value`` overrides (``model_overrides.k=3`` reaches into the model overrides) and
checks every key: unknown keys raise ``ValueError`` with the accepted ones.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Schedule = Literal["cosine", "step", "constant"]
Amp = Literal["none", "bf16"]
SCHEDULES = ("cosine", "step", "constant")
AMPS = ("none", "bf16")
LOSSES = ("l1",)

__all__ = ["TrainConfig", "config_dir", "list_configs", "load_config", "parse_overrides"]


def _fail(name: str, value: Any, expected: str) -> None:
    raise ValueError(f"train config: {name} must be {expected}, got {value!r}")


def _int(name: str, value: Any, lo: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        _fail(name, value, f"an int >= {lo}")


def _num(name: str, value: Any, lo: float = 0.0, *, strict: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or value < lo or (strict and value == lo):
        _fail(name, value, f"a number {'>' if strict else '>='} {lo}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (defaults: the ``lite-x2`` CPU recipe for ``ignn-lite``).

    Attributes:
        description: one line shown by ``ignn-lab configs``.
        model: a registry name (``ignn-lite``, ``edsr-lite``, ``ignn``, ...).
        model_overrides: config fields passed to the builder (``{"k": 3, "adapn": false}``).
        scale: 2, 3 or 4.
        train_sets: set names of the data root or folders of HR images (default T91 + BSD200, "291").
        val_set, val_count: ``val_count`` images of ``val_set``, spread evenly over its sorted names, are held
            out of training and scored (PSNR-Y with the evaluation protocol) at every validation. Never a
            benchmark set, so ``best.pt`` is not chosen on the sets it is reported on.
        patch_size: LR patch side; HR crops are ``scale · patch_size``.
        batch: patches per step, over all processes (each of G ranks takes ``batch / G``).
        steps: optimiser steps.
        lr, betas, eps, weight_decay: Adam.
        schedule: ``cosine`` (linear warm-up, then cosine annealing with warm restarts: cycles of
            ``cycle_steps`` steps, each ``cycle_mult`` times longer than the last, down to ``min_lr``; what the
            IGNN authors say they used, sczhou/IGNN#17), ``step`` (× ``gamma`` every ``step_size`` steps, the
            release's halving) or ``constant``.
        warmup_steps: linear warm-up from 0 (cosine and step).
        cycle_steps: length of the first cosine cycle (None: one cycle over all steps after the warm-up).
        loss: ``l1`` on [0, 1] images.
        grad_clip: max gradient norm (None: off).
        ema_decay: exponential moving average of the weights (None: off); validation and ``best.pt`` use it.
        val_every, log_every, save_every: in steps (``save_every`` writes ``last.pt``).
        seed: weights, crops and augmentation all follow from it.
        deterministic: ``torch.use_deterministic_algorithms`` (bit-identical resume is guaranteed either way
            on CPU with a fixed thread count; this also refuses non-deterministic CUDA kernels).
        amp: ``bf16`` runs forward passes under bfloat16 autocast (CPU with native bf16, or CUDA); weights,
            optimiser and validation stay float32.
        compile: ``torch.compile`` the training forward.
        init_from: a kit checkpoint whose tensors of matching name and shape initialise the model (e.g. a ×2
            body for a ×3 / ×4 run, as EDSR does).
        tensorboard: also write TensorBoard scalars (needs the ``tensorboard`` package).
        data_root: where the named sets live (None: ``IGNN_LAB_DATA`` / ``../shared/datasets``).
    """

    description: str = ""
    model: str = "ignn-lite"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    scale: int = 2
    train_sets: tuple[str, ...] = ("T91", "BSD200")
    val_set: str = "BSD200"
    val_count: int = 10
    patch_size: int = 48
    batch: int = 16
    steps: int = 20000
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: Schedule = "cosine"
    warmup_steps: int = 500
    cycle_steps: int | None = None
    cycle_mult: int = 1
    min_lr: float = 1e-6
    step_size: int = 5000
    gamma: float = 0.5
    loss: str = "l1"
    grad_clip: float | None = None
    ema_decay: float | None = 0.999
    val_every: int = 1000
    log_every: int = 50
    save_every: int = 500
    seed: int = 0
    deterministic: bool = False
    amp: Amp = "none"
    compile: bool = False
    init_from: str | None = None
    tensorboard: bool = False
    data_root: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if isinstance(self.train_sets, str):
            set_(self, "train_sets", (self.train_sets,))
        if isinstance(self.train_sets, list):
            set_(self, "train_sets", tuple(self.train_sets))
        if isinstance(self.betas, list):
            set_(self, "betas", tuple(self.betas))
        if not isinstance(self.description, str):
            _fail("description", self.description, "a str")
        if not isinstance(self.model, str) or not self.model:
            _fail("model", self.model, "a registry name such as 'ignn-lite' or 'edsr-lite'")
        if not isinstance(self.model_overrides, dict) or not all(isinstance(k, str) for k in self.model_overrides):
            _fail("model_overrides", self.model_overrides, "a dict of model config fields")
        if self.scale not in (2, 3, 4) or isinstance(self.scale, bool):
            _fail("scale", self.scale, "2, 3 or 4")
        if not self.train_sets or not all(isinstance(s, str) and s for s in self.train_sets):
            _fail("train_sets", self.train_sets, "a non-empty list of set names or folders")
        if not isinstance(self.val_set, str) or not self.val_set:
            _fail("val_set", self.val_set, "a set name or folder")
        _int("val_count", self.val_count, 0)
        _int("patch_size", self.patch_size, 8)
        _int("batch", self.batch, 1)
        _int("steps", self.steps, 1)
        _num("lr", self.lr, 0.0, strict=True)
        if (not isinstance(self.betas, tuple) or len(self.betas) != 2
                or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas)):
            _fail("betas", self.betas, "two numbers in [0, 1)")
        _num("eps", self.eps, 0.0, strict=True)
        _num("weight_decay", self.weight_decay)
        if self.schedule not in SCHEDULES:
            _fail("schedule", self.schedule, f"one of {SCHEDULES}")
        _int("warmup_steps", self.warmup_steps, 0)
        if self.cycle_steps is not None:
            _int("cycle_steps", self.cycle_steps, 1)
        _int("cycle_mult", self.cycle_mult, 1)
        _num("min_lr", self.min_lr)
        _int("step_size", self.step_size, 1)
        _num("gamma", self.gamma, 0.0, strict=True)
        if self.loss not in LOSSES:
            _fail("loss", self.loss, f"one of {LOSSES}")
        if self.grad_clip is not None:
            _num("grad_clip", self.grad_clip, 0.0, strict=True)
        if self.ema_decay is not None and not (isinstance(self.ema_decay, (int, float))
                                               and not isinstance(self.ema_decay, bool)
                                               and 0 < self.ema_decay < 1):
            _fail("ema_decay", self.ema_decay, "a number in (0, 1) or null")
        for name in ("val_every", "log_every", "save_every"):
            _int(name, getattr(self, name), 1)
        _int("seed", self.seed, 0)
        for name in ("deterministic", "compile", "tensorboard"):
            if not isinstance(getattr(self, name), bool):
                _fail(name, getattr(self, name), "true or false")
        if self.amp not in AMPS:
            _fail("amp", self.amp, f"one of {AMPS}")
        for name in ("init_from", "data_root"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                _fail(name, v, "a path or null")

    @property
    def hr_patch(self) -> int:
        """HR crop side: ``scale · patch_size``."""
        return self.scale * self.patch_size

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples as lists); :meth:`from_dict` inverts it."""
        d = dataclasses.asdict(self)
        d["train_sets"], d["betas"] = list(self.train_sets), list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict; unknown keys raise ValueError naming the accepted ones."""
        if not isinstance(data, dict):
            raise TypeError(f"TrainConfig.from_dict expects a dict, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown train config key(s) {unknown}; accepted keys: {', '.join(names)}")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with fields changed (checked like ``from_dict``)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})


def config_dir() -> Path:
    """The folder of the shipped configs (``ignn_lab/configs``)."""
    return Path(__file__).resolve().parents[1] / "configs"


def list_configs() -> dict[str, str]:
    """Shipped config names → their one-line description."""
    out = {}
    for p in sorted(config_dir().glob("*.json")):
        out[p.stem] = str(json.loads(p.read_text()).get("description", ""))
    return out


def _read_chain(source: str | os.PathLike, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    p = Path(source).expanduser()
    if not p.is_file():
        shipped = config_dir() / f"{source}.json"
        if not shipped.is_file():
            what = "is not a file" if p.suffix or os.sep in str(source) else "is not a file and not a shipped config"
            raise FileNotFoundError(f"train config {str(source)!r} {what}; shipped configs: "
                                    f"{', '.join(list_configs())}")
        p = shipped
    p = p.resolve()
    if p in seen:
        raise ValueError(f"train config {p}: 'base' chain loops back to itself")
    try:
        data = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"train config {p} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"train config {p} must hold a JSON object, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ValueError(f"train config {p}: 'base' must be a config name or path, got {base!r}")
    base_path = Path(base)
    if base_path.suffix and not base_path.is_absolute():
        base = str(p.parent / base_path)
    merged = _read_chain(base, (*seen, p))
    overrides = data.get("model_overrides")
    if isinstance(overrides, dict) and isinstance(merged.get("model_overrides"), dict):
        data["model_overrides"] = {**merged["model_overrides"], **overrides}
    return {**merged, **data}


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["steps=100", "model_overrides.k=3"]`` → a nested dict; values are JSON where they parse, else str."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected key=value (e.g. steps=1000, model_overrides.k=3)")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        parts = key.strip().split(".")
        if len(parts) > 2 or not all(parts):
            raise ValueError(f"--set {item!r}: keys are NAME or model_overrides.NAME")
        if len(parts) == 2:
            if parts[0] != "model_overrides":
                raise ValueError(f"--set {item!r}: only model_overrides takes a dotted key")
            out.setdefault("model_overrides", {})[parts[1]] = value
        else:
            out[parts[0]] = value
    return out


def load_config(source: str | os.PathLike | TrainConfig | dict, overrides: dict[str, Any] | None = None
                ) -> TrainConfig:
    """A :class:`TrainConfig` from a shipped name, a JSON file, a dict or a config, with overrides applied.

    ``overrides["model_overrides"]`` is merged into the config's model overrides, not substituted.
    """
    if isinstance(source, TrainConfig):
        data = source.to_dict()
    elif isinstance(source, dict):
        data = dict(source)
    else:
        data = _read_chain(source)
    over = dict(overrides or {})
    if isinstance(over.get("model_overrides"), dict):
        over["model_overrides"] = {**data.get("model_overrides", {}), **over["model_overrides"]}
    return TrainConfig.from_dict({**data, **over})
