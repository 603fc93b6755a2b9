"""IGNN (Zhou et al., NeurIPS 2020) as released (spec §1, §6), and the non-local baseline on its skeleton.

Data flow: ``sub_mean → head → body1 → gcn → fuse_b → body2 (+ head) → upsample (g×) → fuse_up(·, x_hr) →
tail → add_mean``. Parameter names are the release's (``load_official`` maps a released checkpoint onto them).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from ignn_lab.data.degrade import make_son
from ignn_lab.graph.patches import grid_size
from ignn_lab.models.aggregation import GraphAggregation
from ignn_lab.models.blocks import (ResBlock, cat_channels_last, check_input, conv, conv_block, conv_of_cat,
                                    mean_shift, pixel_shuffle_cat, upsampler_layers)
from ignn_lab.models.config import LITE_BODY, IGNNConfig
from ignn_lab.models.nonlocal_block import NonLocalBlock
from ignn_lab.models.registry import register_model

# Graph settings of ``ignn-lite`` (on LITE_BODY); chosen for CPU speed, see docs/models.md.
LITE_GRAPH = {"embedding": "pixel", "window": 8, "k": 3, "agg_channels": 4, "edge_channels": 8}

__all__ = ["IGNN", "LITE_GRAPH"]


class IGNN(nn.Module):
    """IGNN. ``forward(lr, son=None)``: B×3×H×W in [0, 1] → B×3×sH×sW in [0, 1] units (unclamped).

    ``son`` (B×3×⌊H/g⌋×⌊W/g⌋ in [0, 1]) defaults to the kit's MATLAB-exact bicubic of ``lr`` cropped to a
    multiple of g (spec §1). Internally the network works in [0, 255] like the release.

    Attributes:
        scale: s. graph_scale: g (3 for ×3, else 2). config: the :class:`IGNNConfig`.
        needs_son: True when the forward uses a son (cross-scale graph aggregation).
        gcn: the :class:`GraphAggregation` (``aggregation="graph"``); ``gcn.last_graph`` holds the last graph.
    """

    memory_format = torch.channels_last  # of the activations; mkldnn convolutions are fastest so on CPU

    def __init__(self, config: IGNNConfig, *, init_embedding: bool = True):
        super().__init__()
        if not isinstance(config, IGNNConfig):
            raise TypeError(f"IGNN expects an IGNNConfig, got {type(config).__name__}")
        self.config = config
        self.scale = config.scale
        self.graph_scale = config.graph_scale
        gcfg = config.graph
        c, pos = config.n_feats, config.position
        self.is_graph = config.aggregation == "graph"
        self.needs_son = self.is_graph and gcfg.cross_scale
        self.hr_skip = self.is_graph and gcfg.hr_skip
        self.sub_mean = mean_shift(config.rgb_range, -1)
        self.add_mean = mean_shift(config.rgb_range, +1)
        self.head = nn.Sequential(conv(3, c))
        self.body1 = nn.Sequential(*[ResBlock(c, res_scale=config.res_scale) for _ in range(pos)])
        if self.is_graph:
            self.gcn = GraphAggregation.from_config(c, self.graph_scale, gcfg, res_scale=config.res_scale,
                                                    init_embedding=init_embedding)
            ca = self.gcn.out_channels
            self.fuse_b = nn.Sequential(conv_block(c + ca, c, act=True), conv_block(c, c))
        else:
            self.nonlocal_block = NonLocalBlock(c, region=config.nonlocal_region)
        self.body2 = nn.Sequential(*[ResBlock(c, res_scale=config.res_scale)
                                     for _ in range(config.n_resblocks - pos)], conv_block(c, c))
        hc = config.hr_feats or c
        self.upsample = nn.Sequential(*upsampler_layers(self.graph_scale, c, hc))
        if self.hr_skip:
            self.fuse_up = nn.Sequential(conv_block(hc + ca, hc, act=True), conv_block(hc, hc, act=True))
        tail: list[nn.Module] = []
        if config.scale == 4:
            tail.append(nn.Sequential(conv(hc, 4 * hc), nn.PixelShuffle(2)))
        tail.append(conv_block(hc, 3))
        self.tail = nn.Sequential(*tail)

    def son_of(self, lr: Tensor) -> Tensor:
        """The son the model uses for ``lr`` when none is given: B×3×⌊H/g⌋×⌊W/g⌋ in [0, 1]."""
        return make_son(lr, self.graph_scale)

    def _check_size(self, h: int, w: int) -> None:
        gc, g = self.config.graph, self.graph_scale
        sh, sw = (h // g, w // g) if self.needs_son else (h, w)
        p, t = gc.patch_size, gc.stride
        patches = grid_size(sh, p, t) * grid_size(sw, p, t) if min(sh, sw) >= p else 0
        need = gc.k if self.needs_son else gc.k + 1
        if patches < need:
            where = f"the son ({sh}×{sw}, g={g})" if self.needs_son else f"the LR image ({h}×{w})"
            raise ValueError(f"{where} has {patches} patch(es) of {p}×{p} (stride {t}); the graph needs at "
                             f"least {need} (k={gc.k}). Use a larger image or tile, or a smaller k.")

    def _check_son(self, lr: Tensor, son: Tensor) -> None:
        b, _, h, w = lr.shape
        want = (b, 3, h // self.graph_scale, w // self.graph_scale)
        if tuple(son.shape) != want:
            raise ValueError(f"son must be B×3×⌊H/g⌋×⌊W/g⌋ = {want} for lr {tuple(lr.shape)} "
                             f"(g={self.graph_scale}), got {tuple(son.shape)}")
        if son.dtype != lr.dtype or son.device != lr.device:
            raise ValueError(f"son must share lr's dtype/device ({lr.dtype}, {lr.device}), got {son.dtype}, "
                             f"{son.device}")

    def forward(self, lr: Tensor, son: Tensor | None = None) -> Tensor:
        """B×3×H×W float in [0, 1] (and optionally its son) → B×3×sH×sW (unclamped)."""
        check_input(lr)
        rgb = self.config.rgb_range
        if self.is_graph:
            self._check_size(lr.shape[2], lr.shape[3])
        if self.needs_son:
            if son is None:
                son = self.son_of(lr)
            self._check_son(lr, son)
        # channels-last activations: mkldnn convolutions run several times faster on CPU that way
        x = self.sub_mean(lr * rgb).contiguous(memory_format=self.memory_format)
        x0 = self.head(x)
        x1 = self.body1(x0)
        x_hr = None
        if self.is_graph:
            son_features = None
            if self.config.graph.embedding == "features" and self.needs_son:
                with torch.no_grad():
                    xs = self.sub_mean(son * rgb).contiguous(memory_format=self.memory_format)
                    son_features = self.body1(self.head(xs))
            x_lr, x_hr = self.gcn(x1, lr, son, son_features)
            x1 = self.fuse_b(cat_channels_last([x1, x_lr]))
        else:
            x1 = self.nonlocal_block(x1)
        x2 = self.body2(x1) + x0
        autograd = torch.is_grad_enabled() and (x2.requires_grad or (x_hr is not None and x_hr.requires_grad))
        if x_hr is None:
            u = self.upsample(x2)
        elif len(self.upsample) == 2 and not autograd:
            # conv, then the pixel shuffle written straight into the fusion's input (one copy fewer)
            u = self.fuse_up(pixel_shuffle_cat(self.upsample[0](x2), x_hr, self.upsample[1].upscale_factor))
        else:
            u = self.fuse_up[1](conv_of_cat(self.fuse_up[0], [self.upsample(x2), x_hr]))
        return (self.add_mean(self.tail(u)) / rgb).contiguous()


def _ignn(base: dict[str, Any], scale: int, overrides: dict[str, Any]) -> IGNN:
    cfg = IGNNConfig(scale=scale).replace(**base).replace(**overrides)
    return IGNN(cfg)


@register_model("ignn")
def ignn(scale: int, **overrides: Any) -> IGNN:
    """IGNN paper size: C = 256, R = 32, graph after block 16, k = 5, window 30, frozen random VGG."""
    return _ignn({}, scale, overrides)


@register_model("ignn-lite")
def ignn_lite(scale: int, **overrides: Any) -> IGNN:
    """IGNN on the lite body (:data:`~ignn_lab.models.config.LITE_BODY`) with the lite graph settings
    (:data:`LITE_GRAPH`)."""
    return _ignn({**LITE_BODY, **LITE_GRAPH}, scale, overrides)


@register_model("nonlocal")
def nonlocal_paper(scale: int, **overrides: Any) -> IGNN:
    """The non-local baseline at paper size: IGNN's skeleton, a dense non-local block instead of the graph."""
    return _ignn({"aggregation": "nonlocal"}, scale, overrides)


@register_model("nonlocal-lite")
def nonlocal_lite(scale: int, **overrides: Any) -> IGNN:
    """The non-local baseline on the lite body."""
    return _ignn({**LITE_BODY, "aggregation": "nonlocal"}, scale, overrides)
