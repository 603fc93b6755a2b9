"""EDSR (Lim et al., CVPR-W 2017), with the parameter names of the official EDSR-PyTorch code.

Sizes: ``edsr`` 32 blocks × 256 (res_scale 0.1), ``edsr-baseline`` 16 × 64 (res_scale 1), ``edsr-lite``
(:data:`~ignn_lab.models.config.LITE_BODY`, sized for CPU training, see ``docs/models.md``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from ignn_lab.models.blocks import ResBlock, check_input, conv, mean_shift, upsampler_layers
from ignn_lab.models.config import LITE_BODY, EDSRConfig
from ignn_lab.models.registry import register_model

__all__ = ["EDSR"]


class EDSR(nn.Module):
    """EDSR. ``forward(lr, son=None)``: B×3×H×W in [0, 1] → B×3×sH×sW in [0, 1] units (unclamped).

    Internally the network works in [0, rgb_range] like the original (×255 in, ÷255 out). ``son`` is accepted
    and ignored, so every kit model has the same call signature.
    """

    needs_son = False
    memory_format = torch.channels_last  # of the activations; mkldnn convolutions are fastest so on CPU

    def __init__(self, config: EDSRConfig):
        super().__init__()
        if not isinstance(config, EDSRConfig):
            raise TypeError(f"EDSR expects an EDSRConfig, got {type(config).__name__}")
        self.config = config
        self.scale = config.scale
        c = config.n_feats
        self.sub_mean = mean_shift(config.rgb_range, -1)
        self.add_mean = mean_shift(config.rgb_range, +1)
        self.head = nn.Sequential(conv(3, c))
        blocks = [ResBlock(c, res_scale=config.res_scale) for _ in range(config.n_resblocks)]
        self.body = nn.Sequential(*blocks, conv(c, c))
        hc = config.hr_feats or c
        self.tail = nn.Sequential(nn.Sequential(*upsampler_layers(config.scale, c, hc)), conv(hc, 3))

    def forward(self, lr: Tensor, son: Tensor | None = None) -> Tensor:
        """B×3×H×W float in [0, 1] → B×3×sH×sW (unclamped)."""
        check_input(lr)
        # channels-last activations: mkldnn convolutions run several times faster on CPU that way
        x = self.sub_mean(lr * self.config.rgb_range).contiguous(memory_format=self.memory_format)
        x = self.head(x)
        x = self.body(x) + x
        return (self.add_mean(self.tail(x)) / self.config.rgb_range).contiguous()


def _edsr(base: dict[str, Any], scale: int, overrides: dict[str, Any]) -> EDSR:
    names = {f.name for f in dataclasses.fields(EDSRConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown EDSR option(s) {unknown}; accepted: {sorted(names - {'scale'})}")
    return EDSR(EDSRConfig(**{**base, **overrides, "scale": scale}))


@register_model("edsr")
def edsr(scale: int, **overrides: Any) -> EDSR:
    """EDSR paper size: 32 blocks × 256 features, res_scale 0.1 (40.7 M parameters at ×2)."""
    return _edsr({"n_feats": 256, "n_resblocks": 32, "res_scale": 0.1}, scale, overrides)


@register_model("edsr-baseline")
def edsr_baseline(scale: int, **overrides: Any) -> EDSR:
    """EDSR baseline: 16 blocks × 64 features, res_scale 1."""
    return _edsr({"n_feats": 64, "n_resblocks": 16, "res_scale": 1.0}, scale, overrides)


@register_model("edsr-lite")
def edsr_lite(scale: int, **overrides: Any) -> EDSR:
    """EDSR with the lite body (:data:`~ignn_lab.models.config.LITE_BODY`), sized for CPU training."""
    return _edsr(dict(LITE_BODY), scale, overrides)
