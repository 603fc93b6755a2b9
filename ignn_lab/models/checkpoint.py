"""The kit's own checkpoints: weights + model config + provenance in one file, written atomically."""

from __future__ import annotations

import datetime as _dt
import io
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ignn_lab.data.io import atomic_write_bytes
from ignn_lab.models.config import EDSRConfig, IGNNConfig, model_config_from_dict

FORMAT = "ignn-lab/model"
FORMAT_VERSION = 1

__all__ = ["CheckpointError", "FORMAT", "load", "read_checkpoint", "save"]


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


def read_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name the file and say what it holds.

    Raises:
        FileNotFoundError: no such file. CheckpointError: empty, not a torch file, or it holds pickled code /
        objects other than tensors and plain values (refused: loading them could run code).
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {p}")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p} is empty (0 bytes); expected an ignn-lab checkpoint (.pt)")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure: say what the file should be
        unsafe = _unsafe_globals(p)
        if unsafe:
            raise CheckpointError(f"{p} holds pickled Python objects or code ({', '.join(unsafe[:3])}), not just "
                                  "tensors and plain values; refused (loading it could run code). Save checkpoints "
                                  "with ignn_lab.models.save or ignn-lab train.") from None
        raise CheckpointError(f"{p} is not an ignn-lab checkpoint: torch.load cannot read it (not written by "
                              "torch.save, or truncated); expected a .pt written by ignn_lab.models.save or "
                              "ignn-lab train") from None


def _unsafe_globals(path: Path) -> list[str]:
    """The Python globals (classes, functions) a torch file would import when unpickled; [] if none or unreadable."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - not a torch file at all
        return []


def load(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model saved by :func:`save` (read with ``weights_only=True``).

    Returns:
        The model in eval mode, with ``model.provenance`` (dict) attached.

    Raises:
        FileNotFoundError, CheckpointError (not a kit checkpoint, wrong version, or weights that do not fit).
    """
    from ignn_lab.models.edsr import EDSR
    from ignn_lab.models.ignn import IGNN

    p = Path(path).expanduser()
    obj = read_checkpoint(p, map_location=map_location)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        hint = ""
        released = isinstance(obj, dict) and ("net_state_dict" in obj or any(str(k).startswith("module.")
                                                                              for k in obj))
        if released:
            hint = " It looks like a released IGNN checkpoint: use ignn_lab.models.load_official(path, scale)"
        raise CheckpointError(f"{p} is not an ignn-lab model checkpoint (no format={FORMAT!r} marker).{hint}")
    if obj.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{p}: checkpoint format version {obj.get('format_version')!r} is not "
                              f"supported (this kit reads version {FORMAT_VERSION})")
    if not isinstance(obj.get("config"), dict):
        raise CheckpointError(f"{p}: the checkpoint has no model config (key 'config'); it cannot be rebuilt")
    try:
        config = model_config_from_dict(obj["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{p}: its model config is not usable: {exc}") from None
    model = EDSR(config) if isinstance(config, EDSRConfig) else IGNN(config, init_embedding=False)
    state = obj.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{p}: the checkpoint has no state_dict")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                  if k in state and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        raise CheckpointError(f"{p}: weights do not fit the saved config: missing {missing}, unexpected "
                              f"{unexpected}, shape mismatch {mismatched}")
    model.load_state_dict(state, strict=True)
    model.provenance = obj.get("provenance", {})
    return model.eval()
