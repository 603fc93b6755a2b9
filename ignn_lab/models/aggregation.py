"""Graph aggregation (IGNN's ``Graph`` + ``GCNBlock``, spec §4–§5) as one module with explicit switches.

:class:`GraphAggregation` builds the kNN graph from the images (or features), aggregates the neighbours'
g×-larger patches with :func:`graph_aggregate`, and weights the k ranks (``edge_weighting``). Parameter names
follow the release (``knn_downsample``, ``weightnet_lr``, ``weightnet_hr``); the matching embedding is
``embed`` (the release's ``vggnet`` / ``graph.embedcnn``).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ignn_lab.graph import CrossScaleGraph, cross_scale_knn
from ignn_lab.graph.embed import VGGHead, embed, vgg19_weights_path
from ignn_lab.graph.patches import grid_size
from ignn_lab.models.blocks import ResBlock, conv_block
from ignn_lab.models.config import GraphConfig
from ignn_lab.models.patch_ops import (
    ADAIN_EPS,
    aggregate_direct,
    aggregate_train,
    diff_map,
    pads_of,
    spread_constant,
    var_mean,
)

__all__ = ["GraphAggregation", "graph_aggregate", "same_scale_knn"]


def same_scale_knn(query: Tensor, *, k: int, patch_size: int, stride: int, window: int | None,
                   centering: str, backend: str) -> CrossScaleGraph:
    """kNN of every LR patch among the LR image's own patches (same grid), the query itself excluded.

    Searches k+1 neighbours with :func:`cross_scale_knn` (``graph_scale=1``) and drops the query's own index
    (or, when an exact duplicate ranks ahead of it, the (k+1)-th).
    """
    g = cross_scale_knn(query, query, k=k + 1, patch_size=patch_size, stride=stride, window=window,
                        graph_scale=1, centering=centering, backend=backend)
    b, m, _ = g.index.shape
    own = torch.arange(m, device=g.index.device).view(1, m, 1)
    keep = g.index != own
    # self not found (an exact duplicate ranked ahead of it): drop the farthest instead
    drop_last = keep.all(dim=2, keepdim=True)
    keep = keep & ~(drop_last & (torch.arange(k + 1, device=keep.device) == k))
    return dataclasses.replace(g, index=g.index[keep].view(b, m, k), distance=g.distance[keep].view(b, m, k))


def graph_aggregate(features: Tensor, index: Tensor, *, graph_scale: int, patch_size: int = 3,
                    stride: int = 2, adapn: bool = True, cross_scale: bool = True,
                    max_elements: int = 1 << 27) -> Tensor:
    """Aggregate each query's k neighbour patches into k g×-larger maps (GCNBlock ``knn_hr``, spec §5).

    For query patch m and rank r, the neighbour ``index[m, r]`` (a son patch at grid (R, C)) is the
    ``g·p × g·p`` block of ``features`` starting at LR pixel ``(g·t·R, g·t·C)`` (zero beyond ``g·⌊H/g⌋``);
    with ``adapn`` it is normalised per channel to the query's p×p mean and unbiased std (eps 1e-5 on both
    variances).
    The blocks are placed on the query's ``g·p`` footprint (stride ``g·t``) and overlaps are averaged.

    Implementation: in the pixel-unshuffled ("block") space of the spec's ``yd`` (B×C·g²×⌊H/g⌋×⌊W/g⌋) an HR
    patch is a p×p patch with stride t; for each of the p² patch cells, one row gather of g×g×C source blocks,
    the AdaIN multiply-add and a strided add into the output (``patch_ops.aggregate_direct``; with autograd,
    ``aggregate_train``, whose backward has the same shape).

    Args:
        features: B×C×H×W (the backbone features x1, any float dtype).
        index: B×M×k int64; M = the query patch grid of H×W. With ``cross_scale=True`` indices are into the
            son patch grid (son = ⌊H/g⌋×⌊W/g⌋); with ``cross_scale=False`` into the LR's own patch grid, and
            the neighbour block is the nearest-neighbour g× enlargement of its p×p LR patch (no HR detail).
        graph_scale: g ≥ 1.
        patch_size, stride: LR patch geometry (3, 2).
        adapn: apply the AdaIN normalisation.
        max_elements: ranks are processed in chunks whose gathered patches stay below this many elements.

    Returns:
        B×k×C×gH×gW, rank r in ``[:, r]`` (without autograd each rank's map is laid out channels-last).
    """
    if features.ndim != 4 or index.ndim != 3:
        raise ValueError(f"graph_aggregate expects B×C×H×W features and B×M×k index, got "
                         f"{tuple(features.shape)} and {tuple(index.shape)}")
    b, c, h, w = features.shape
    g, p, t, k = graph_scale, patch_size, stride, index.shape[2]
    qpads = pads_of(h, w, p, t)
    m1, m2 = grid_size(h, p, t), grid_size(w, p, t)
    m = m1 * m2
    if index.shape[:2] != (b, m):
        raise ValueError(f"index has shape {tuple(index.shape)}; expected B×M×k with B={b}, M={m} "
                         f"(the {m1}×{m2} patch grid of a {h}×{w} input)")
    hs, ws = (h // g, w // g) if cross_scale else (h, w)  # the source grid: son, or the LR itself
    spads = pads_of(hs, ws, p, t)
    n, e = grid_size(hs, p, t) * grid_size(ws, p, t), g * g * p * p
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n):
        raise ValueError(f"index values must lie in [0, {n}) (the source patch grid), found "
                         f"[{int(index.min())}, {int(index.max())}]")
    stats_z = sig_y = mu_y = None
    if adapn:
        if cross_scale:
            yd = F.pixel_unshuffle(features[:, :, : g * hs, : g * ws], g) if g > 1 else features
        else:
            yd = features.repeat_interleave(g * g, dim=1)  # block space of the g× nearest enlargement
        yd = F.pad(yd, (spads[2], spads[3], spads[0], spads[1]))  # B×(C·g²)×Hs×Ws
        cols = F.unfold(yd, p, stride=t)  # B×(C·g²·p²)×N, rows ordered (c, sy, sx, py, px)
        var_z, mu_z = var_mean(cols.view(b, c, e, n), 2)  # B×C×N
        stats_z = torch.cat([(var_z + ADAIN_EPS).rsqrt_(), mu_z], 1).transpose(1, 2).contiguous()  # B×N×2C
        qcols = F.unfold(F.pad(features, (qpads[2], qpads[3], qpads[0], qpads[1])), p, stride=t)
        var_y, mu_y = var_mean(qcols.view(b, c, p * p, m), 2)  # B×C×M
        sig_y = (var_y + ADAIN_EPS).sqrt_().transpose(1, 2).unsqueeze(2)  # B×M×1×C
        mu_y = mu_y.transpose(1, 2).unsqueeze(2)
    stats = (stats_z, sig_y, mu_y) if adapn else None
    step = max(1, min(k, max_elements // max(1, b * m * c * e)))
    direct = not torch.is_grad_enabled() or not features.requires_grad
    outs = []
    for r0 in range(0, k, step):
        idx = index[:, :, r0: r0 + step]
        run = aggregate_direct if direct else aggregate_train
        outs.append(run(features, idx, stats, (m1, m2), qpads, spads, p, t, g, cross_scale))
    return outs[0] if len(outs) == 1 else torch.cat(outs, 1)


def _weight_net(d_in: int, width: int, res_scale: float) -> nn.Sequential:
    """The release's ``weightnet``: 1×1 conv D→E, ResBlock(E, 1×1), 1×1 conv E→1."""
    return nn.Sequential(conv_block(d_in, width, 1), ResBlock(width, 1, res_scale), conv_block(width, 1, 1))


#: Pixels per chunk of the edge networks: small enough that every layer's activations stay in the CPU cache.
EDGE_NET_CHUNK = 8192


def _edge_nets(nets: list[nn.Sequential], x: Tensor) -> Tensor:
    """Run one or more :func:`_weight_net` (1×1 convs only) on N×D×H×W ``x``: N×H×W×len(nets).

    The same arithmetic as the 1×1 convolutions, as matrix products on (pixels × channels) rows: the nets
    are stacked into one wider net (block-diagonal weights, so each keeps its own output) and run over
    cache-sized chunks of pixels, several times faster on CPU than 1×1 convolutions over a few channels.
    Differentiable.
    """
    n, d, h, w = x.shape
    firsts, blocks, lasts = [m[0][0] for m in nets], [m[1] for m in nets], [m[2][0] for m in nets]
    w1, b1 = torch.cat([c.weight.flatten(1) for c in firsts]), torch.cat([c.bias for c in firsts])
    w2 = torch.block_diag(*[blk.body[0].weight.flatten(1) for blk in blocks])
    b2 = torch.cat([blk.body[0].bias for blk in blocks])
    w3 = torch.block_diag(*[blk.body[2].weight.flatten(1) for blk in blocks])
    b3 = torch.cat([blk.body[2].bias for blk in blocks])
    w4, b4 = torch.block_diag(*[c.weight.flatten(1) for c in lasts]), torch.cat([c.bias for c in lasts])
    res_scale = blocks[0].res_scale
    if any(blk.res_scale != res_scale for blk in blocks):
        raise ValueError("stacked edge networks must share res_scale")
    rows = x.permute(0, 2, 3, 1).reshape(-1, d)
    outs = []
    for a in range(0, rows.shape[0], EDGE_NET_CHUNK):
        y = F.linear(rows[a: a + EDGE_NET_CHUNK], w1, b1)
        r = F.linear(F.linear(y, w2, b2).clamp_min_(0), w3, b3)
        outs.append(F.linear(torch.add(y, r, alpha=res_scale), w4, b4))
    return torch.cat(outs).view(n, h, w, len(nets))


def _weighted_sum(maps: Tensor, weights: Tensor) -> Tensor:
    """Σ_r maps[:, r] · weights[:, r] without a k-times larger temporary (maps B×k×…, weights broadcast)."""
    acc = maps[:, 0] * weights[:, 0]
    for r in range(1, maps.shape[1]):
        acc = acc.addcmul_(maps[:, r], weights[:, r])
    return acc


class GraphAggregation(nn.Module):
    """Cross-scale graph aggregation with explicit switches (defaults: the released IGNN).

    Args:
        n_feats: C, the width of the features it aggregates.
        graph_scale: g (2 for ×2/×4, 3 for ×3).
        k, patch_size, stride, window, window_centering, window_mode, embedding, adapn, edge_weighting,
            edge_channels, agg_channels, cross_scale, hr_skip, knn_backend, embedding_seed: see
            :class:`GraphConfig`.
        res_scale: residual scaling of the weight nets' ResBlock (0.1 in the release).
        init_embedding: load ImageNet weights for ``vgg19`` / draw the seeded ``vgg-random`` head (False when
            the weights are about to be loaded from a checkpoint).

    ``forward(x, lr, son, son_features=None)`` returns ``(x_lr, x_hr)``: B×C_a×H×W and B×C_a×gH×gW (None when
    ``hr_skip`` is off), C_a = ``out_channels`` (C unless ``agg_channels`` is set). The last graph is kept in
    ``last_graph`` (a :class:`~ignn_lab.graph.CrossScaleGraph`).
    """

    def __init__(self, n_feats: int, graph_scale: int, *, k: int = 5, patch_size: int = 3, stride: int = 2,
                 window: int | None = 30, window_centering: str = "corrected", window_mode: str = "per-call",
                 embedding: str = "vgg-random", adapn: bool = True, edge_weighting: str = "ecn",
                 edge_channels: int = 64, agg_channels: int | None = None, cross_scale: bool = True,
                 hr_skip: bool = True, knn_backend: str = "auto", embedding_seed: int = 0,
                 res_scale: float = 0.1, init_embedding: bool = True):
        super().__init__()
        self.config = GraphConfig(k=k, patch_size=patch_size, stride=stride, window=window,
                                  window_centering=window_centering, window_mode=window_mode,
                                  embedding=embedding, adapn=adapn, edge_weighting=edge_weighting,
                                  edge_channels=edge_channels, agg_channels=agg_channels,
                                  cross_scale=cross_scale, hr_skip=hr_skip, knn_backend=knn_backend,
                                  embedding_seed=embedding_seed)
        if graph_scale < 1:
            raise ValueError(f"graph_scale must be >= 1, got {graph_scale}")
        self.graph_scale = graph_scale
        self.n_feats = n_feats
        self.embed: VGGHead | None = None
        if embedding in ("vgg-random", "vgg19"):
            self.embed = VGGHead()
            if init_embedding and embedding == "vgg-random":
                self.embed.randomize_(embedding_seed)
            elif init_embedding:
                state = torch.load(vgg19_weights_path(), map_location="cpu", weights_only=True)
                self.embed.load_torchvision_vgg19_(state)
        d = {"pixel": 3, "features": n_feats}.get(embedding, 64)
        g = graph_scale
        ca = n_feats if agg_channels is None else agg_channels
        self.out_channels = ca
        if agg_channels is not None:
            self.reduce = conv_block(n_feats, ca, 1)
        self.knn_downsample = nn.Sequential(conv_block(ca, ca, 5, act=True, stride=g),
                                            conv_block(ca, ca, 3, act=True),
                                            conv_block(ca, ca, 3))
        if edge_weighting == "ecn":
            self.weightnet_lr = _weight_net(d, edge_channels, res_scale)
            if hr_skip:
                self.weightnet_hr = _weight_net(d, edge_channels, res_scale)
        self._global_latched = False
        self.last_graph: CrossScaleGraph | None = None
        self.debug = False
        self.last_intermediates: dict[str, Tensor] = {}

    @classmethod
    def from_config(cls, n_feats: int, graph_scale: int, config: GraphConfig, *, res_scale: float = 0.1,
                    init_embedding: bool = True) -> GraphAggregation:
        """Build from a :class:`GraphConfig`."""
        return cls(n_feats, graph_scale, res_scale=res_scale, init_embedding=init_embedding,
                   **config.to_dict())

    @property
    def window_latched(self) -> bool:
        """True once ``window_mode="sticky"`` switched this instance to global search."""
        return self._global_latched

    def reset_window(self) -> None:
        """Undo the sticky switch to global search (``window_mode="sticky"``)."""
        self._global_latched = False

    def _window_for(self, son_grid: tuple[int, int]) -> int | None:
        w = self.config.window
        if w is None or self._global_latched:
            return None
        if w >= son_grid[0] and w >= son_grid[1]:
            if self.config.window_mode == "sticky":
                self._global_latched = True
            return None
        return w

    def _embeddings(self, x: Tensor, lr: Tensor | None, son: Tensor | None,
                    son_features: Tensor | None) -> tuple[Tensor, Tensor | None]:
        cfg = self.config
        need_son = cfg.cross_scale
        if cfg.embedding == "features":
            if need_son and son_features is None:
                raise ValueError("embedding='features' with cross_scale needs son_features (the son's "
                                 "features at the graph position)")
            return x.detach(), (son_features.detach() if need_son else None)
        if lr is None or (need_son and son is None):
            what = " and the son" if need_son else ""
            raise ValueError(f"embedding={cfg.embedding!r} needs the LR image{what}")
        if cfg.embedding == "pixel":
            return embed(lr, "pixel"), (embed(son, "pixel") if need_son else None)
        return self.embed(lr), (self.embed(son) if need_son else None)

    # The search runs C kernels through ctypes on worker threads: torch.compile must not trace into it (it
    # miscompiles the workers' index arithmetic); the graph is built eagerly and the rest of the model compiled.
    @torch.compiler.disable
    def build_graph(self, x: Tensor, lr: Tensor | None, son: Tensor | None,
                    son_features: Tensor | None = None) -> tuple[CrossScaleGraph, Tensor]:
        """The kNN graph and the LR diff map B×(k·D)×H×W (no gradient flows through either)."""
        cfg = self.config
        with torch.no_grad():
            q, s = self._embeddings(x, lr, son, son_features)
            p, t = cfg.patch_size, cfg.stride
            if cfg.cross_scale:
                grid = (grid_size(s.shape[2], p, t), grid_size(s.shape[3], p, t))
                graph = cross_scale_knn(q, s, k=cfg.k, patch_size=p, stride=t, window=self._window_for(grid),
                                        graph_scale=self.graph_scale, centering=cfg.window_centering,
                                        backend=cfg.knn_backend)
            else:
                grid = (grid_size(q.shape[2], p, t), grid_size(q.shape[3], p, t))
                graph = same_scale_knn(q, k=cfg.k, patch_size=p, stride=t, window=self._window_for(grid),
                                       centering=cfg.window_centering, backend=cfg.knn_backend)
                s = q
            diff = diff_map(q, s, graph.index, patch_size=cfg.patch_size, stride=cfg.stride)
        return graph, diff

    def _rank_logits(self, graph: CrossScaleGraph, diff: Tensor, hr: bool) -> Tensor:
        """B×k×H×W logits of the rank weights at LR, for the LR path and, with ``hr``, also for the HR path
        (2·B×k×H×W: LR first); the HR weights are the g× nearest enlargement of their LR map."""
        cfg = self.config
        b, _, h, w = diff.shape
        n_out = 2 if hr else 1
        if cfg.edge_weighting == "ecn":
            nets = [self.weightnet_lr, self.weightnet_hr] if hr else [self.weightnet_lr]
            out = _edge_nets(nets, diff.reshape(b * cfg.k, -1, h, w))  # (B·k)×H×W×nets
            return out.permute(3, 0, 1, 2).reshape(n_out * b, cfg.k, h, w)
        if cfg.edge_weighting == "distance":
            dist = graph.distance.to(diff.dtype)
            logits = -dist / (dist.mean(dim=2, keepdim=True) + 1e-12)  # B×M×k
            m1, m2 = graph.query_grid
            logits = spread_constant(logits.transpose(1, 2).reshape(b, cfg.k, m1, m2), graph.padding,
                                     cfg.patch_size, cfg.stride)
            return logits.repeat(n_out, 1, 1, 1)
        return diff.new_zeros(n_out * b, cfg.k, h, w)  # uniform

    def forward(self, x: Tensor, lr: Tensor | None = None, son: Tensor | None = None,
                son_features: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Aggregate neighbours of ``x`` (see :meth:`aggregate`); under autocast the graph runs in float32."""
        dev = x.device.type
        if not torch.is_autocast_enabled(dev):
            return self.aggregate(x, lr, son, son_features)
        # Mixed precision stops at the graph: its convolutions have a few channels, where bfloat16 kernels are
        # much slower on CPU than float32 ones, and the kNN ranks exact float32 distances.
        f32 = [None if t is None else t.float() for t in (x, lr, son, son_features)]
        with torch.autocast(dev, enabled=False):
            x_lr, x_hr = self.aggregate(*f32)
        return x_lr.to(x.dtype), (None if x_hr is None else x_hr.to(x.dtype))

    def aggregate(self, x: Tensor, lr: Tensor | None = None, son: Tensor | None = None,
                  son_features: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Aggregate neighbours of ``x``.

        Args:
            x: B×C×H×W features (0–255 scale in IGNN).
            lr: B×3×H×W image in [0, 1] (for the image embeddings).
            son: B×3×⌊H/g⌋×⌊W/g⌋ in [0, 1] (cross-scale with an image embedding).
            son_features: B×C×⌊H/g⌋×⌊W/g⌋ (``embedding="features"`` with ``cross_scale``).

        Returns:
            x_lr: B×C_a×H×W. x_hr: B×C_a×gH×gW, or None when ``hr_skip`` is off (C_a = ``out_channels``).
        """
        cfg, g = self.config, self.graph_scale
        graph, diff = self.build_graph(x, lr, son, son_features)
        self.last_graph = graph
        feats = self.reduce(x) if self.config.agg_channels is not None else x
        b, c, h, w = feats.shape
        knn_hr = graph_aggregate(feats, graph.index, graph_scale=g, patch_size=cfg.patch_size,
                                 stride=cfg.stride, adapn=cfg.adapn, cross_scale=cfg.cross_scale)
        # channels-last: oneDNN runs these few-channel convolutions about twice as fast so on CPU
        maps = knn_hr.reshape(b * cfg.k, c, g * h, g * w).contiguous(memory_format=torch.channels_last)
        knn_lr = self.knn_downsample(maps).reshape(b, cfg.k, c, h, w)
        weights = torch.softmax(self._rank_logits(graph, diff, hr=cfg.hr_skip), dim=1)
        x_lr = _weighted_sum(knn_lr, weights[:b].view(b, cfg.k, 1, h, w))
        x_hr = None
        if cfg.hr_skip:
            w_hr = weights[b:]
            # HR weights are the g× nearest enlargement of the LR map: broadcast instead of materialising it
            x_hr = _weighted_sum(knn_hr.view(b, cfg.k, c, h, g, w, g), w_hr.view(b, cfg.k, 1, h, 1, w, 1))
            x_hr = x_hr.view(b, c, g * h, g * w)
        if self.debug:
            self.last_intermediates = {"x1_lr": x_lr, "x1_hr": x_hr, "diff": diff, "knn_hr": knn_hr,
                                       "weights": weights}
        return x_lr, x_hr
