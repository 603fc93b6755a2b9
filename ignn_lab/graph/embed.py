"""Embeddings that patches are matched in (spec §3).

* ``pixel``: mean-shifted RGB (``x - mean``, x in [0, 1]); 3 channels, 27-d patch vectors.
* ``vgg-random``: the VGG19-shaped frozen head (ImageNet MeanShift, conv1_1, ReLU, conv1_2, ReLU) with seeded
  random weights drawn as the released training code draws them (kaiming-normal fan_in × 0.1, zero biases):
  this is what the released training path really matches with. 64 channels, 576-d patch vectors.
* ``vgg19``: the same head with ImageNet weights, read from a local file or the torch hub cache.
* ``features``: a tensor you pass (any B×C×H×W), used as it is.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn
from torch import Tensor

Embedding = Literal["pixel", "vgg-random", "vgg19", "features"]
EMBEDDINGS: tuple[str, ...] = ("pixel", "vgg-random", "vgg19", "features")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG19_FILE = "vgg19-dcbb9e9d.pth"

__all__ = ["EMBEDDINGS", "Embedding", "MeanShift", "VGGHead", "vgg19_weights_path", "build_embedding",
           "embed"]


class MeanShift(nn.Conv2d):
    """Frozen 1×1 conv ``(v - mean_c)/std_c·sign``; as EDSR's MeanShift (weights ``diag(1/std)``)."""

    def __init__(self, rgb_range: float, mean: tuple[float, ...], std: tuple[float, ...], sign: int = -1):
        super().__init__(3, 3, kernel_size=1)
        std_t = torch.tensor(std, dtype=torch.float32)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std_t.view(3, 1, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(mean, dtype=torch.float32) / std_t
        for p in self.parameters():
            p.requires_grad = False


class VGGHead(nn.Module):
    """relu1_2 of VGG19 on input in [0, 1]: MeanShift, conv1_1 (3→64), ReLU, conv1_2 (64→64), ReLU.

    Parameter names (``sub_mean``, ``model.0``, ``model.2``) are those of the released ``VGG19`` module, so a
    released checkpoint's ``vggnet.*`` tensors load directly. All parameters are frozen.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sub_mean = MeanShift(1.0, IMAGENET_MEAN, IMAGENET_STD, sign=-1)
        self.model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(inplace=True),
                                   nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True))
        for p in self.parameters():
            p.requires_grad = False

    def forward(self, x: Tensor) -> Tensor:
        """B×3×H×W in [0, 1] → B×64×H×W."""
        return self.model(self.sub_mean(x))

    def randomize_(self, seed: int = 0, scale: float = 0.1) -> VGGHead:
        """Released training init: kaiming-normal (fan_in, a = 0) × ``scale``, biases zero, seeded."""
        gen = torch.Generator().manual_seed(seed)
        for conv in (self.model[0], self.model[2]):
            fan_in = conv.weight[0].numel()
            std = (2.0 / fan_in) ** 0.5
            w = torch.randn(conv.weight.shape, generator=gen, dtype=torch.float64) * std * scale
            conv.weight.data.copy_(w.to(conv.weight.dtype))
            conv.bias.data.zero_()
        return self

    def load_torchvision_vgg19_(self, state: dict[str, Tensor]) -> VGGHead:
        """Take conv1_1/conv1_2 from a torchvision ``vgg19`` state dict (``features.0/2.*``)."""
        need = ["features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias"]
        missing = [k for k in need if k not in state]
        if missing:
            raise KeyError(f"not a torchvision vgg19 state dict: missing {missing}")
        with torch.no_grad():
            self.model[0].weight.copy_(state["features.0.weight"])
            self.model[0].bias.copy_(state["features.0.bias"])
            self.model[2].weight.copy_(state["features.2.weight"])
            self.model[2].bias.copy_(state["features.2.bias"])
        return self


def vgg19_weights_path(path: str | os.PathLike | None = None) -> Path:
    """Locate torchvision's ImageNet VGG19 weights (``vgg19-dcbb9e9d.pth``).

    Args:
        path: an explicit file; else the ``IGNN_LAB_VGG19`` environment variable; else the torch hub cache
            (``torch.hub.get_dir()/checkpoints``).

    Returns:
        The first of those that is a file.

    Raises:
        FileNotFoundError: none exists; the message names every place looked at and how to fix it.
    """
    hub = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    cands = [Path(p).expanduser() for p in (path, os.environ.get("IGNN_LAB_VGG19")) if p] + [hub]
    for c in cands:
        if c.is_file():
            return c
    raise FileNotFoundError(
        "ImageNet VGG19 weights not found. Looked for: "
        + ", ".join(str(c) for c in cands)
        + f". Put torchvision's {VGG19_FILE} in the torch hub cache ({hub.parent}) or pass its path "
        "(IGNN_LAB_VGG19 / --vgg19-weights); or use the 'vgg-random' or 'pixel' embedding."
    )


def build_embedding(kind: Embedding, *, seed: int = 0,
                    weights: str | os.PathLike | None = None) -> nn.Module | None:
    """The embedding network for ``kind``.

    Args:
        kind: ``vgg-random`` (released init, seeded), ``vgg19`` (ImageNet weights), ``pixel`` or ``features``.
        seed: seed of the ``vgg-random`` weights.
        weights: the VGG19 weight file for ``vgg19`` (see :func:`vgg19_weights_path`).

    Returns:
        A frozen :class:`VGGHead` (input B×3×H×W in [0, 1], output B×64×H×W), or None for ``pixel`` and
        ``features``, which need no network.

    Raises:
        ValueError: unknown kind. FileNotFoundError: ``vgg19`` without weights.
    """
    if kind == "vgg-random":
        return VGGHead().randomize_(seed)
    if kind == "vgg19":
        state = torch.load(vgg19_weights_path(weights), map_location="cpu", weights_only=True)
        return VGGHead().load_torchvision_vgg19_(state)
    if kind in ("pixel", "features"):
        return None
    raise ValueError(f"unknown embedding {kind!r}; use one of {', '.join(EMBEDDINGS)}")


def embed(x: Tensor, kind: Embedding = "pixel", *, net: nn.Module | None = None, seed: int = 0,
          weights: str | os.PathLike | None = None) -> Tensor:
    """Embed B×3×H×W images in [0, 1] for matching.

    Args:
        x: B×3×H×W in [0, 1] (for ``features``: any B×C×H×W, returned as is).
        kind: ``pixel``, ``vgg-random``, ``vgg19`` or ``features``.
        net: a prebuilt embedding network to reuse (from :func:`build_embedding`).

    Returns:
        B×C'×H×W (C' = 3 for ``pixel``, 64 for the VGG heads), same dtype and device as ``x``.

    Raises:
        TypeError: ``x`` is not a floating tensor. ValueError: not B×3×H×W, or an unknown kind.
    """
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"embed expects a floating torch.Tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if kind == "features":
        return x
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"embedding {kind!r} expects B×3×H×W images in [0, 1], got shape {tuple(x.shape)}")
    if kind == "pixel":
        mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return x - mean
    if net is None:
        net = build_embedding(kind, seed=seed, weights=weights)
    p = next(net.parameters())
    if p.dtype != x.dtype or p.device != x.device:  # convert a copy: the caller's network is left as it is
        net = copy.deepcopy(net).to(device=x.device, dtype=x.dtype)
    with torch.no_grad():
        return net(x)
