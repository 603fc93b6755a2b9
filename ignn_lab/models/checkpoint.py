"""The kit's own checkpoints: weights + model config + provenance in one file, written atomically."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ignn_lab.data.io import atomic_write_bytes
from ignn_lab.models.config import EDSRConfig, IGNNConfig, model_config_from_dict

FORMAT = "ignn-lab/model"
FORMAT_VERSION = 1

__all__ = ["CheckpointError", "FORMAT", "is_released", "load", "read_checkpoint", "rebuild", "save",
           "state_dict_problems", "with_overrides"]


class CheckpointError(ValueError):
    """A file is not a usable ignn-lab model checkpoint."""


def _check_plain(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be str, got {type(k).__name__}")
            _check_plain(v, f"{where}.{k}")
        return
    raise TypeError(f"{where}: {type(value).__name__} is not allowed; provenance holds only str, int, float, "
                    "bool, None, lists and dicts (so the file loads with weights_only=True)")


def save(model: nn.Module, path: str | os.PathLike, provenance: dict[str, Any] | None = None, *,
         training: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights, its config and provenance to ``path`` atomically (temp file + rename).

    Args:
        model: a kit model (it has ``config`` with ``to_dict()``).
        path: destination file (``.pt``); parent folders are created.
        provenance: JSON-like dict (e.g. dataset, steps, seed); the kit adds version, torch version and time.
        training: the trainer's resumable state (tensors and plain values only), stored beside the weights
            under ``"training"``; :func:`load` ignores it, so a ``last.pt`` is also a model checkpoint.

    Returns:
        The path written.
    """
    config = getattr(model, "config", None)
    if not isinstance(config, (EDSRConfig, IGNNConfig)):
        raise TypeError(f"save expects a kit model with a config (EDSRConfig/IGNNConfig), got "
                        f"{type(model).__name__} with config {type(config).__name__}")
    prov = dict(provenance or {})
    _check_plain(prov, "provenance")
    from ignn_lab import __version__

    prov.setdefault("ignn_lab_version", __version__)
    # a plain str: torch's TorchVersion type does not load with weights_only=True
    prov.setdefault("torch_version", str(torch.__version__))
    prov.setdefault("saved_at", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": config.to_dict(),
               "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
               "provenance": prov}
    if training is not None:
        payload["training"] = training
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue())


_ACCEPTED = ("expected a checkpoint written by ignn_lab.models.save or ignn-lab train (.pt), or a released IGNN "
             "checkpoint (.pth)")


def _diagnose(p: Path, exc: BaseException) -> str:
    """Why ``torch.load(p, weights_only=True)`` failed, in the kit's words (torch's own text is long and speaks of
    options the kit never uses)."""
    text = str(exc)
    if "Unsupported global" in text:
        return (f"{p} holds pickled Python objects or code, not just tensors and plain values; refused (it is read "
                "with torch.load(weights_only=True), which runs no code). Save checkpoints with "
                "ignn_lab.models.save or the trainer")
    with open(p, "rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"
    if zipped or zipfile.is_zipfile(p):
        return f"{p} is a damaged torch checkpoint (its zip archive cannot be read: truncated or not torch's); " \
               + _ACCEPTED
    return f"{p} is not a torch checkpoint (neither torch.save's zip format nor its legacy format); {_ACCEPTED}"


def read_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name the file and say what it should be.

    Raises:
        FileNotFoundError: no such file. CheckpointError: empty, not a torch file, damaged, or it holds pickled
        code / objects other than tensors and plain values (refused: loading them could run code).
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint file at {p}" + (" (it is a folder)" if p.is_dir() else ""))
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p} is empty (0 bytes); {_ACCEPTED}")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure: say what the file should be
        raise CheckpointError(_diagnose(p, exc)) from None


def is_released(obj: Any) -> bool:
    """Whether a loaded checkpoint has the released IGNN layout (``net_state_dict``, or ``module.*`` keys)."""
    return isinstance(obj, dict) and ("net_state_dict" in obj or (
        bool(obj) and all(isinstance(k, str) and k.startswith("module.") for k in obj)))


def with_overrides(config: EDSRConfig | IGNNConfig, overrides: dict[str, Any]) -> EDSRConfig | IGNNConfig:
    """``config`` with fields changed (IGNN graph switches may be given flat); unknown names raise ValueError."""
    if not overrides:
        return config
    if isinstance(config, IGNNConfig):
        return config.replace(**overrides)
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown EDSR option(s) {unknown}; an EDSR takes {', '.join(sorted(names))}")
    return dataclasses.replace(config, **overrides)


def rebuild(obj: Any, source: str | os.PathLike = "checkpoint", **overrides: Any) -> nn.Module:
    """The model a :func:`save` payload describes (as read by :func:`read_checkpoint`), weights loaded.

    Args:
        obj: the loaded payload. source: the file, for messages.
        **overrides: config fields to change before the weights are loaded (e.g. ``window=12``); the weights
            must still fit.

    Raises:
        CheckpointError: not a kit checkpoint, wrong version, no config, or weights that do not fit.
        ValueError: an override the model's config does not have.
    """
    from ignn_lab.models.edsr import EDSR
    from ignn_lab.models.ignn import IGNN

    p = source
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        if is_released(obj):
            raise CheckpointError(f"{p} is a released IGNN checkpoint, not an ignn-lab one: load it with "
                                  "ignn_lab.models.load_official(path, scale), or pass it as --model")
        what = "a dict without the format marker" if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise CheckpointError(f"{p} is not an ignn-lab model checkpoint (it holds {what}, no format={FORMAT!r}); "
                              + _ACCEPTED)
    if obj.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{p}: checkpoint format version {obj.get('format_version')!r} is not "
                              f"supported (this kit reads version {FORMAT_VERSION})")
    if not isinstance(obj.get("config"), dict):
        raise CheckpointError(f"{p}: the checkpoint has no model config (key 'config'), so its network cannot be "
                              f"rebuilt; {_ACCEPTED}")
    try:
        config = model_config_from_dict(obj["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{p}: its model config is not usable: {exc}") from None
    config = with_overrides(config, overrides)
    model = EDSR(config) if isinstance(config, EDSRConfig) else IGNN(config, init_embedding=False)
    state = obj.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{p}: the checkpoint has no state_dict (its weights); {_ACCEPTED}")
    problems = state_dict_problems(model.state_dict(), state)
    if problems:
        changed = f" with {sorted(overrides)} changed" if overrides else ""
        raise CheckpointError(f"{p}: its weights do not fit its config{changed}: {problems}")
    model.load_state_dict(state, strict=True)
    model.provenance = obj.get("provenance", {})
    return model.eval()


def state_dict_problems(own: dict[str, torch.Tensor], given: dict[str, Any], *, shown: int = 6) -> str:
    """One line listing missing, unexpected and shape-mismatched keys (a few of each, with the counts), or ''."""
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    mismatched = [f"{k} {tuple(getattr(given[k], 'shape', ()))} vs {tuple(v.shape)}" for k, v in own.items()
                  if k in given and getattr(given[k], "shape", None) != v.shape]
    parts = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if items:
            more = f", … and {len(items) - shown} more" if len(items) > shown else ""
            parts.append(f"{title} ({len(items)}): " + ", ".join(items[:shown]) + more)
    return "; ".join(parts)


def load(path: str | os.PathLike, *, map_location: str | torch.device = "cpu", **overrides: Any) -> nn.Module:
    """Rebuild a model saved by :func:`save` (read with ``weights_only=True``).

    Args:
        overrides: config fields to change before loading (e.g. an IGNN's ``window``); the weights must fit.

    Returns:
        The model in eval mode, with ``model.provenance`` (dict) attached.

    Raises:
        FileNotFoundError, CheckpointError (not a kit checkpoint, wrong version, or weights that do not fit),
        ValueError (an unknown override).
    """
    p = Path(path).expanduser()
    return rebuild(read_checkpoint(p, map_location=map_location), p, **overrides)
