"""The trainer's state on disk: what ``last.pt`` holds besides the weights, how it is read back, and how a run
is initialised from another checkpoint.

``last.pt`` is a kit model checkpoint (:func:`ignn_lab.models.save`) with a ``"training"`` entry: step, config,
raw weights, Adam, EMA, the Python / numpy / torch RNG states, the sampler position, the validation history and
the wall time. Everything is tensors and plain values, so it reads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ignn_lab.data.io import sha256_file
from ignn_lab.engine.train_config import TrainConfig, load_config
from ignn_lab.models.checkpoint import CheckpointError, read_checkpoint

TRAIN_FORMAT = "ignn-lab/train"
TRAIN_FORMAT_VERSION = 1
#: Fields that may change when a run is resumed (what it computes up to the old last step stays the same).
RESUMABLE_CHANGES = ("steps", "val_every", "log_every", "save_every", "tensorboard", "data_root", "description")

__all__ = ["RESUMABLE_CHANGES", "TRAIN_FORMAT", "TRAIN_FORMAT_VERSION", "init_from", "read_training_state",
           "restore_rng", "resumed_config", "rng_state"]


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": {"kind": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                      "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
            "torch": torch.get_rng_state()}


def restore_rng(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])


def read_training_state(path: str | os.PathLike) -> dict[str, Any]:
    """The resumable state inside a ``last.pt`` (read with ``weights_only=True``), checked.

    Raises:
        FileNotFoundError: no file. CheckpointError: not a trainer checkpoint, or one this version cannot read.
    """
    obj = read_checkpoint(path)
    state = obj.get("training") if isinstance(obj, dict) else None
    if not isinstance(state, dict) or state.get("format") != TRAIN_FORMAT:
        raise CheckpointError(f"{path} holds no trainer state (no 'training' entry of format {TRAIN_FORMAT!r}); "
                              "only a last.pt written by ignn-lab train can be resumed")
    if state.get("version") != TRAIN_FORMAT_VERSION:
        raise CheckpointError(f"{path}: trainer state version {state.get('version')!r}; this kit reads "
                              f"version {TRAIN_FORMAT_VERSION}")
    missing = [k for k in ("step", "config", "model", "optimizer", "rng") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: trainer state lacks {missing}")
    return state


def init_from(model: nn.Module, source: str) -> dict:
    """Copy the tensors of a kit checkpoint (a path or a shipped name) whose name and shape match; returns the
    record the run keeps: the source as given, its file and sha256 (a shipped name may later name other
    weights), the sessions that trained it, and how many tensors were copied."""
    from ignn_lab.models.pretrained import list_pretrained, pretrained_path

    path = Path(source).expanduser()
    if not path.is_file():
        shipped = pretrained_path(source)
        if shipped is None:
            raise FileNotFoundError(f"init_from={source!r} is neither a checkpoint file nor a shipped checkpoint "
                                    f"(shipped: {', '.join(list_pretrained()) or 'none'})")
        path = shipped
    obj = read_checkpoint(path)
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"init_from={path}: no state_dict in the file (expected an ignn-lab checkpoint)")
    own = model.state_dict()
    copied = [k for k, v in state.items() if k in own and own[k].shape == v.shape]
    if not copied:
        raise CheckpointError(f"init_from={path}: no tensor matches the model {type(model).__name__} by name and "
                              "shape")
    model.load_state_dict({k: state[k] for k in copied}, strict=False)
    prov = obj.get("provenance") if isinstance(obj.get("provenance"), dict) else {}
    return {"source": source, "path": str(path.resolve()), "sha256": sha256_file(path),
            "sessions": prov.get("sessions"), "tensors": len(copied), "of": len(own)}


def resumed_config(saved: dict, given: TrainConfig | None, path: Path) -> TrainConfig:
    cfg = load_config(saved)
    if given is None:
        return cfg
    changed = sorted(k for k, v in given.to_dict().items() if cfg.to_dict()[k] != v)
    bad = [k for k in changed if k not in RESUMABLE_CHANGES]
    if bad:
        raise ValueError(f"--resume: the run in {path.parent} was trained with different {bad}; only "
                         f"{list(RESUMABLE_CHANGES)} may change when a run is resumed")
    return given
