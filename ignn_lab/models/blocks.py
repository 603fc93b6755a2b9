"""Building blocks shared by EDSR and IGNN, laid out so parameter names match the released code.

Released names: a conv "block" is ``nn.Sequential(conv[, act])`` (hence ``head.0``, ``fuse_b.0.0``), a
residual block is ``ResBlock.body = [conv, ReLU, conv]`` (hence ``body1.3.body.2``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ignn_lab.graph.embed import MeanShift

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)

__all__ = ["DIV2K_MEAN", "ResBlock", "cat_channels_last", "check_input", "conv", "conv_block", "conv_of_cat",
           "mean_shift", "upsampler_layers"]


def check_input(lr: Tensor, what: str = "lr") -> None:
    """Raise a clear error unless ``lr`` is a floating B×3×H×W tensor (every network's input)."""
    if not hasattr(lr, "ndim") or not hasattr(lr, "is_floating_point"):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(lr).__name__}")
    if lr.ndim != 4 or lr.shape[1] != 3:
        raise ValueError(f"{what} must be B×3×H×W (RGB in [0, 1]), got shape {tuple(lr.shape)}")
    if not lr.is_floating_point():
        raise TypeError(f"{what} must be a floating tensor in [0, 1], got dtype {lr.dtype}")


def conv(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Conv2d:
    """Conv with bias and "same" zero padding ``(kernel - 1) // 2`` (the release's ``default_conv``)."""
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=(kernel - 1) // 2, bias=True)


def conv_block(c_in: int, c_out: int, kernel: int = 3, *, act: bool = False,
               stride: int = 1) -> nn.Sequential:
    """``Sequential(conv[, ReLU])``: index 0 is the conv, as in the release."""
    layers: list[nn.Module] = [conv(c_in, c_out, kernel, stride)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    """``v + res_scale · conv(ReLU(conv(v)))`` (EDSR / IGNN residual block, no BatchNorm)."""

    def __init__(self, n_feats: int, kernel: int = 3, res_scale: float = 1.0):
        super().__init__()
        self.body = nn.Sequential(conv(n_feats, n_feats, kernel), nn.ReLU(inplace=True),
                                  conv(n_feats, n_feats, kernel))
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        """B×C×H×W → B×C×H×W."""
        return torch.add(x, self.body(x), alpha=self.res_scale)


def mean_shift(rgb_range: float, sign: int) -> MeanShift:
    """Frozen 1×1 conv adding (``sign=+1``) or subtracting (``-1``) the DIV2K mean times ``rgb_range``."""
    return MeanShift(rgb_range, DIV2K_MEAN, (1.0, 1.0, 1.0), sign=sign)


def upsampler_layers(scale: int, n_feats: int, out_feats: int | None = None) -> list[nn.Module]:
    """EDSR's upsampler: ×2^n as n × [conv C→4C, PixelShuffle(2)], ×3 as conv C→9C, PixelShuffle(3).

    ``out_feats`` (default C) is the width after the last stage: a narrower high-resolution path costs a
    quarter of the convolution work per halving of the width at the largest size.
    """
    layers: list[nn.Module] = []
    out = n_feats if out_feats is None else out_feats
    if scale in (2, 4, 8):
        stages = int(math.log2(scale))
        for i in range(stages):
            c_out = out if i == stages - 1 else n_feats
            layers += [conv(n_feats, 4 * c_out), nn.PixelShuffle(2)]
    elif scale == 3:
        layers += [conv(n_feats, 9 * out), nn.PixelShuffle(3)]
    else:
        raise ValueError(f"upsampler: scale must be 2, 3, 4 or 8, got {scale}")
    return layers


def pixel_shuffle_cat(y: Tensor, extra: Tensor, r: int) -> Tensor:
    """``cat_channels_last([pixel_shuffle(y, r), extra])`` as one copy (no separate shuffled tensor).

    Args:
        y: B×(C·r²)×H×W. extra: B×E×rH×rW.

    Returns:
        B×(C+E)×rH×rW, channels-last. Without autograd only (a plain copy, so bit-identical to the two-step
        form); with autograd use the two steps.
    """
    b, cr, h, w = y.shape
    c, e = cr // (r * r), extra.shape[1]
    out = torch.empty(b, c + e, r * h, r * w, dtype=y.dtype, device=y.device, memory_format=torch.channels_last)
    nhwc = out.permute(0, 2, 3, 1)  # B×rH×rW×(C+E), contiguous
    shuffled = y.permute(0, 2, 3, 1).reshape(b, h, w, c, r, r).permute(0, 1, 4, 2, 5, 3)  # B×H×r×W×r×C
    nhwc.view(b, h, r, w, r, c + e)[..., :c].copy_(shuffled)
    nhwc[..., c:].copy_(extra.permute(0, 2, 3, 1))
    return out


def conv_of_cat(block: nn.Sequential, parts: list[Tensor]) -> Tensor:
    """``block(torch.cat(parts, 1))`` for a ``conv_block``, without the concatenation: the conv's weight is
    split by input channels and the partial convolutions are summed (the same sum, in another order). Used
    with autograd, where the concatenation costs a copy each way and an odd channel count (16 + 4) makes oneDNN's
    backward slower than for the parts."""
    conv_layer = block[0]
    weight, out = conv_layer.weight, None
    start = 0
    for i, x in enumerate(parts):
        w = weight[:, start: start + x.shape[1]]
        start += x.shape[1]
        y = F.conv2d(x, w, conv_layer.bias if i == 0 else None, conv_layer.stride, conv_layer.padding)
        out = y if out is None else out + y
    if start != weight.shape[1]:
        raise ValueError(f"conv_of_cat: the parts have {start} channels, the conv takes {weight.shape[1]}")
    for layer in block[1:]:
        out = layer(out)
    return out


def cat_channels_last(tensors: list[Tensor]) -> Tensor:
    """``torch.cat(tensors, 1)`` into a channels-last B×C×H×W tensor (plain ``cat`` may fall back to NCHW,
    which makes the next convolution several times slower on CPU)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):  # ``out=`` has no autograd
        return torch.cat(tensors, 1).contiguous(memory_format=torch.channels_last)
    b, _, h, w = tensors[0].shape
    out = torch.empty(b, sum(t.shape[1] for t in tensors), h, w, dtype=tensors[0].dtype,
                      device=tensors[0].device, memory_format=torch.channels_last)
    return torch.cat(tensors, 1, out=out)
