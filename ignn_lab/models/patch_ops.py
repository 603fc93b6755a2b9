"""Tensor kernels of the graph aggregation (spec §2, §4, §5); :mod:`ignn_lab.models.aggregation` calls them.

* :func:`aggregate_direct` / :func:`aggregate_train` — gather each query's neighbour blocks, AdaIN them,
  average the overlaps (the GCNBlock's ``knn_hr``), in place; ``aggregate_train`` adds a backward of the same
  shape (an autograd Function), for training.
* :func:`diff_map` — the per-channel |query − neighbour| patch differences (``WITH_DIFF``), as an LR map.
* :func:`spread_constant` — patch2im of per-patch constants (overlap average), done separably.

Exactness note. The release spreads per-patch constants over ``3g×3g`` HR footprints with stride ``2g``; that
map is constant on g×g blocks, i.e. the nearest-neighbour g× enlargement of the same spread at LR with
``3×3`` / 2. Diff maps (and everything pixel-wise that follows them: the edge weight nets and the softmax)
are therefore computed at LR and enlarged, which equals the release up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ignn_lab.graph.patches import calc_padding, grid_size

ADAIN_EPS = 1e-5

__all__ = ["ADAIN_EPS", "adain_coeffs", "aggregate_direct", "aggregate_train", "diff_map", "gather_rows",
           "pads_of", "spread_constant", "var_mean"]


def pads_of(h: int, w: int, p: int, t: int) -> tuple[int, int, int, int]:
    top, bottom = calc_padding(h, p, t)
    left, right = calc_padding(w, p, t)
    return top, bottom, left, right


def _spread_1d(v: Tensor, dim: int, p: int, t: int, before: int, after: int) -> Tensor:
    """Average of the patches covering each position along ``dim`` (patch length p, stride t), cropped."""
    n = v.shape[dim]
    length = (n - 1) * t + p
    shape = list(v.shape)
    shape[dim] = length
    out = v.new_zeros(shape)
    count = torch.zeros(length, dtype=v.dtype, device=v.device)
    for d in range(p):
        out.narrow(dim, d, (n - 1) * t + 1)[(slice(None),) * (dim % v.ndim) + (slice(None, None, t),)] += v
        count[d: d + (n - 1) * t + 1: t] += 1
    view = [1] * v.ndim
    view[dim] = length
    out = out / count.view(view)
    return out.narrow(dim, before, length - before - after)


def spread_constant(values: Tensor, pads: tuple[int, int, int, int], patch_size: int = 3,
                    stride: int = 2) -> Tensor:
    """patch2im of constant patches: each pixel gets the mean of the values of the patches covering it.

    Args:
        values: B×E×m1×m2, one value per patch and channel (patch grid row-major).
        pads: (top, bottom, left, right) padding of the image the patches came from (cropped off again).
        patch_size, stride: patch geometry.

    Returns:
        B×E×H×W with H = (m1-1)·stride + patch_size - top - bottom (likewise W).
    """
    top, bottom, left, right = pads
    rows = _spread_1d(values, 2, patch_size, stride, top, bottom)
    return _spread_1d(rows, 3, patch_size, stride, left, right)


def diff_map(query_emb: Tensor, son_emb: Tensor, index: Tensor, *, patch_size: int = 3,
             stride: int = 2) -> Tensor:
    """Per-channel sums of |query − neighbour| patch differences, spread over the query footprints (§4).

    Args:
        query_emb: B×D×H×W embedding of the LR image.
        son_emb: B×D×h×w embedding the neighbours were found in.
        index: B×M×k int64 neighbour indices into ``son_emb``'s patch grid, M = query patch grid size.

    Returns:
        B×(k·D)×H×W at LR (channel ``r·D + c``, rank-major); the release's HR map is its g× nearest
        enlargement.
    """
    b, d, h, w = query_emb.shape
    p, t = patch_size, stride
    qpads = pads_of(h, w, p, t)
    spads = pads_of(son_emb.shape[2], son_emb.shape[3], p, t)
    q = F.unfold(F.pad(query_emb, (qpads[2], qpads[3], qpads[0], qpads[1])), p, stride=t).transpose(1, 2)
    s = F.unfold(F.pad(son_emb, (spads[2], spads[3], spads[0], spads[1])), p, stride=t).transpose(1, 2)
    m1, m2 = grid_size(h, p, t), grid_size(w, p, t)
    k = index.shape[2]
    nb = gather_rows(s, index.reshape(b, -1)).view(b, m1 * m2, k, d * p * p)  # B×M×k×(D·p²)
    out = nb.sub_(q.unsqueeze(2)).abs_().view(b, m1, m2, k * d, p * p).sum(4)
    return spread_constant(out.permute(0, 3, 1, 2), qpads, p, t)


def gather_rows(rows: Tensor, idx: Tensor) -> Tensor:
    """rows B×N×F, idx B×M → B×M×F (row idx[b, m] of batch b), as one embedding lookup (the fastest CPU
    row gather; ``index_select`` is several times slower when it allocates its output)."""
    b, n, f = rows.shape
    flat = idx if b == 1 else idx + torch.arange(b, device=idx.device).view(b, 1) * n
    flat = flat.reshape(-1)
    return F.embedding(flat, rows.reshape(b * n, f).contiguous()).view(b, idx.shape[1], f)


def var_mean(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Unbiased variance and mean along ``dim`` (two-pass; ``torch.var_mean`` is far slower on CPU)."""
    mu = x.mean(dim, keepdim=True)
    var = (x - mu).pow_(2).sum(dim).div_(x.shape[dim] - 1)
    return var, mu.squeeze(dim)


def adain_coeffs(stats: tuple[Tensor, Tensor, Tensor], idx: Tensor) -> tuple[Tensor, Tensor]:
    """Scale a and shift of ``z' = a·z + shift`` for every (query, rank, channel): B×M×kk×C each."""
    stats_z, sig_y, mu_y = stats
    b, m, kk = idx.shape
    c = sig_y.shape[-1]
    st = gather_rows(stats_z, idx.reshape(b, m * kk)).view(b, m, kk, 2 * c)
    a = st[..., :c] * sig_y
    return a, mu_y - st[..., c:] * a


def _source_rows(features: Tensor, spads, g: int, cross_scale: bool) -> tuple[Tensor, int, int]:
    """The source image as rows of g×g×C blocks: (B·Hs·Ws)×(g²·C), with the padded son-grid size (Hs, Ws)."""
    b, c, h, w = features.shape
    if cross_scale:
        hs, ws = h // g, w // g
        pad = (g * spads[2], g * spads[3], g * spads[0], g * spads[1])
        xp = F.pad(features[:, :, : g * hs, : g * ws], pad)
        hp, wp = xp.shape[2] // g, xp.shape[3] // g
        src = xp.view(b, c, hp, g, wp, g).permute(0, 2, 4, 3, 5, 1)  # B×Hs×Ws×g×g×C
    else:
        xp = F.pad(features, (spads[2], spads[3], spads[0], spads[1]))
        hp, wp = xp.shape[2], xp.shape[3]
        src = xp.permute(0, 2, 3, 1).reshape(b, hp, wp, 1, 1, c).expand(b, hp, wp, g, g, c)
    return src.reshape(b * hp * wp, g * g * c).contiguous(), hp, wp


def _source_grad(grad_src: Tensor, shape, spads, g: int, cross_scale: bool, hp: int, wp: int) -> Tensor:
    """The adjoint of :func:`_source_rows`: (B·Hs·Ws)×(g²·C) row gradients → B×C×H×W."""
    b, c, h, w = shape
    out = grad_src.new_zeros(shape)
    if cross_scale:
        hs, ws = h // g, w // g
        full = grad_src.view(b, hp, wp, g, g, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, hp * g, wp * g)
        y0, x0 = g * spads[0], g * spads[2]
        out[:, :, : g * hs, : g * ws] = full[:, :, y0: y0 + g * hs, x0: x0 + g * ws]
    else:
        full = grad_src.view(b, hp, wp, g * g, c).sum(3).permute(0, 3, 1, 2)
        out.copy_(full[:, :, spads[0]: spads[0] + h, spads[2]: spads[2] + w])
    return out


def _direct_geometry(idx: Tensor, grid, wp: int, hp: int, p: int, t: int):
    b = idx.shape[0]
    n2 = (wp - p) // t + 1
    base = (idx // n2) * (t * wp) + (idx % n2) * t
    if b > 1:
        base = base + (torch.arange(b, device=idx.device) * (hp * wp)).view(b, 1, 1)
    return base.reshape(-1)


def _expand_blocks(v: Tensor, g: int) -> Tensor:
    """B×M×kk×C per-block coefficients repeated over the g×g sub-pixels: (B·M·kk)×(g²·C)."""
    c = v.shape[-1]
    return v.reshape(-1, 1, c).expand(-1, g * g, c).reshape(-1, g * g * c)


def _inverse_count(m1, m2, p, t, qpads, h, w, like: Tensor) -> Tensor:
    count_r = _count_1d(m1, p, t, like)[qpads[0]: qpads[0] + h]
    count_c = _count_1d(m2, p, t, like)[qpads[2]: qpads[2] + w]
    return (1.0 / (count_r[:, None] * count_c[None, :])).view(1, 1, h, 1, w, 1, 1)


def _placements(m1, m2, p, t, qpads, h, w):
    """(py, px, (patch rows, output rows), (patch cols, output cols)) for every patch cell that lands in the
    cropped image."""
    for py in range(p):
        iy = _valid(m1, py, t, qpads[0], h)
        if iy is None:
            continue
        for px in range(p):
            ix = _valid(m2, px, t, qpads[2], w)
            if ix is not None:
                yield py, px, iy, ix


def _direct_forward(features: Tensor, idx: Tensor, a: Tensor | None, shift: Tensor | None, grid, qpads, spads,
                    p, t, g, cross_scale: bool) -> Tensor:
    """The aggregate accumulated in place, laid out B×kk×H×g×W×g×C (each rank's map channels-last)."""
    b, c, h, w = features.shape
    (m1, m2), kk = grid, idx.shape[2]
    src, hp, wp = _source_rows(features, spads, g, cross_scale)
    base = _direct_geometry(idx, grid, wp, hp, p, t)
    if a is not None:
        a, shift = _expand_blocks(a, g), _expand_blocks(shift, g)
    acc = features.new_zeros(b, kk, h, g, w, g, c)
    rows = features.new_empty(base.numel(), g * g * c)
    pos = torch.empty_like(base)
    for py, px, iy, ix in _placements(m1, m2, p, t, qpads, h, w):
        torch.add(base, py * wp + px, out=pos)
        torch.index_select(src, 0, pos, out=rows)
        if a is not None:
            torch.addcmul(shift, rows, a, out=rows)
        r = rows.view(b, m1, m2, kk, g, g, c).permute(0, 3, 1, 4, 2, 5, 6)[:, :, iy[0], :, ix[0]]
        acc[:, :, iy[1], :, ix[1]].add_(r)
    return acc.mul_(_inverse_count(m1, m2, p, t, qpads, h, w, features))


class _DirectAggregate(torch.autograd.Function):
    """:func:`_direct_forward` with a backward of the same shape: per patch cell, one strided copy of the
    output gradient, one gather for the AdaIN scale's gradient and one ``index_add_`` into the source rows.
    Nothing of size B·M·kk·C·g²p² is ever materialised (the autograd graph of a gather-based formulation
    holds several such tensors and is several times slower on CPU)."""

    @staticmethod
    def forward(ctx, features, a, shift, idx, geom):
        grid, qpads, spads, p, t, g, cross_scale = geom
        acc = _direct_forward(features, idx, a, shift, grid, qpads, spads, p, t, g, cross_scale)
        ctx.save_for_backward(features, a, idx)
        ctx.geom = geom
        b, kk, h, _, w, _, c = acc.shape
        return acc.view(b, kk, g * h, g * w, c).permute(0, 1, 4, 2, 3)

    @staticmethod
    def backward(ctx, grad):
        features, a, idx = ctx.saved_tensors
        (m1, m2), qpads, spads, p, t, g, cross_scale = ctx.geom
        b, c, h, w = features.shape
        kk, f = idx.shape[2], g * g * c
        need_src, need_a, need_shift = ctx.needs_input_grad[:3]
        adapn = a is not None
        gs = grad.permute(0, 1, 3, 4, 2).reshape(b, kk, h, g, w, g, c)
        gs = gs * _inverse_count(m1, m2, p, t, qpads, h, w, features)
        src, hp, wp = _source_rows(features, spads, g, cross_scale)
        base = _direct_geometry(idx, (m1, m2), wp, hp, p, t)
        rows_n = base.numel()
        a_blocks = _expand_blocks(a, g) if adapn else None
        acc_shift = src.new_zeros(rows_n, f) if (adapn and need_shift) else None
        acc_a = src.new_zeros(rows_n, f) if (adapn and need_a) else None
        # per (query, rank): the gradient of its whole gathered patch, cell by cell, for one index_add at the end
        patches = src.new_zeros(rows_n, p * p, f) if need_src else None
        cell = src.new_empty(b, m1, m2, kk, g, g, c)
        placed = cell.permute(0, 3, 1, 4, 2, 5, 6)  # B×kk×M1×g×M2×g×C, the layout of gs
        flat = cell.view(rows_n, f)
        pos = torch.empty_like(base)
        for py, px, iy, ix in _placements(m1, m2, p, t, qpads, h, w):
            cell.zero_()
            placed[:, :, iy[0], :, ix[0]] = gs[:, :, iy[1], :, ix[1]]
            if acc_shift is not None:
                acc_shift += flat
            if acc_a is not None:
                torch.add(base, py * wp + px, out=pos)
                acc_a.addcmul_(flat, src.index_select(0, pos))
            if patches is not None and adapn:
                torch.mul(flat, a_blocks, out=patches[:, py * p + px])
            elif patches is not None:
                patches[:, py * p + px] = flat
        shape4 = (b, m1 * m2, kk, c)
        grad_a = acc_a.view(rows_n, g * g, c).sum(1).view(shape4) if acc_a is not None else None
        grad_shift = acc_shift.view(rows_n, g * g, c).sum(1).view(shape4) if acc_shift is not None else None
        grad_features = None
        if patches is not None:
            n = ((hp - p) // t + 1) * ((wp - p) // t + 1)
            # sum the gradients of every son patch (one index_add of whole patches), then place the patches
            per_patch = patches.new_zeros(b * n, p * p * f).index_add_(0, _flat_index(idx, n),
                                                                        patches.view(rows_n, p * p * f))
            cols = per_patch.view(b, n, p * p, f).permute(0, 3, 2, 1).reshape(b, f * p * p, n)
            grad_image = F.fold(cols, (hp, wp), p, stride=t)  # B×(g²C)×Hs×Ws
            grad_src = grad_image.permute(0, 2, 3, 1).reshape(b * hp * wp, f)
            grad_features = _source_grad(grad_src, features.shape, spads, g, cross_scale, hp, wp)
        return grad_features, grad_a, grad_shift, None, None


def _flat_index(idx: Tensor, n: int) -> Tensor:
    """B×M×kk patch indices → flat rows of a (B·N)-row table: (B·M·kk,)."""
    b = idx.shape[0]
    flat = idx.reshape(b, -1)
    if b > 1:
        flat = flat + torch.arange(b, device=idx.device).view(b, 1) * n
    return flat.reshape(-1)


def aggregate_train(features: Tensor, idx: Tensor, stats, grid, qpads, spads, p, t, g,
                    cross_scale: bool) -> Tensor:
    """:func:`aggregate_direct`, differentiable in ``features`` and the AdaIN statistics (the training path)."""
    a = shift = None
    if stats is not None:
        a, shift = adain_coeffs(stats, idx)
    return _DirectAggregate.apply(features, a, shift, idx, (grid, qpads, spads, p, t, g, cross_scale))


def aggregate_direct(features: Tensor, idx: Tensor, stats, grid, qpads, spads, p, t, g,
                     cross_scale: bool) -> Tensor:
    """The aggregate without autograd: B×kk×C×gH×gW, each rank's map laid out channels-last.

    For each of the p² patch cells, one row gather of g×g×C source blocks and one strided multiply-add into
    the output; overlaps are averaged at the end. (Fresh large allocations and badly strided copies are what
    cost on CPU, so the loop has none.)
    """
    a = shift = None
    if stats is not None:
        a, shift = adain_coeffs(stats, idx)
    acc = _direct_forward(features, idx, a, shift, grid, qpads, spads, p, t, g, cross_scale)
    b, kk, h, _, w, _, c = acc.shape
    return acc.view(b, kk, g * h, g * w, c).permute(0, 1, 4, 2, 3)


def _valid(n: int, offset: int, t: int, before: int, length: int) -> tuple[slice, slice] | None:
    """Patches i (of n) whose cell ``offset`` (canvas coordinate ``offset + t·i``) lies in the cropped image
    ``[before, before + length)``: (slice over i, slice over output coordinates), or None."""
    lo = max(0, -((offset - before) // t))
    hi = min(n - 1, (before + length - 1 - offset) // t)
    if hi < lo:
        return None
    start = offset + t * lo - before
    return slice(lo, hi + 1), slice(start, start + t * (hi - lo) + 1, t)


def _count_1d(n: int, p: int, t: int, like: Tensor) -> Tensor:
    r = torch.zeros((n - 1) * t + p, dtype=like.dtype, device=like.device)
    for d in range(p):
        r[d: d + (n - 1) * t + 1: t] += 1
    return r
