"""Tensor kernels of the graph aggregation (spec §2, §4, §5); :mod:`ignn_lab.models.aggregation` calls them.

* :func:`aggregate_direct` / :func:`aggregate_fold` — gather each query's neighbour blocks, AdaIN them,
  average the overlaps (the GCNBlock's ``knn_hr``): an in-place, allocation-light path for inference and an
  autograd-friendly ``fold`` path for training. Both compute the same thing.
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

__all__ = ["ADAIN_EPS", "adain_coeffs", "aggregate_direct", "aggregate_fold", "diff_map", "gather_rows",
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


def aggregate_fold(cols: Tensor, idx: Tensor, stats, grid, qpads, p, t, g, size) -> Tensor:
    """Gather whole patches, AdaIN, ``F.fold``, average, pixel shuffle (autograd-friendly path)."""
    b, ce, n = cols.shape
    (m1, m2), (h, w), m, kk = grid, size, grid[0] * grid[1], idx.shape[2]
    e = g * g * p * p
    c = ce // e
    z = gather_rows(cols.transpose(1, 2), idx.reshape(b, m * kk)).view(b, m, kk, c, e)
    if stats is not None:
        a, shift = adain_coeffs(stats, idx)
        z = torch.addcmul(shift.unsqueeze(4), z, a.unsqueeze(4))
    z = z.permute(0, 2, 3, 4, 1).reshape(b * kk, c * e, m)
    hc, wc = (m1 - 1) * t + p, (m2 - 1) * t + p
    count = _count_1d(m1, p, t, cols)[:, None] * _count_1d(m2, p, t, cols)[None, :]
    canvas = F.fold(z, (hc, wc), p, stride=t) / count
    blocks = canvas[:, :, qpads[0]: hc - qpads[1], qpads[2]: wc - qpads[3]]
    return (F.pixel_shuffle(blocks, g) if g > 1 else blocks).view(b, kk, c, g * h, g * w)


def aggregate_direct(features: Tensor, idx: Tensor, stats, grid, qpads, spads, p, t, g,
                      cross_scale: bool) -> Tensor:
    """Same result as :func:`aggregate_fold` without materialising whole patches (used without autograd).

    The output is accumulated in place, laid out B×kk×H×g×W×g×C (each rank's map channels-last): for each of
    the p² patch positions, one row gather of g×g×C source blocks and one strided multiply-add; overlaps are
    averaged at the end. (Fresh large allocations and badly strided copies are what cost on CPU, so the loop
    has none.)
    """
    b, c, h, w = features.shape
    (m1, m2), kk = grid, idx.shape[2]
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
    src = src.reshape(b * hp * wp, g * g * c).contiguous()
    n2 = (wp - p) // t + 1
    base = (idx // n2) * (t * wp) + (idx % n2) * t
    if b > 1:
        base = base + (torch.arange(b, device=idx.device) * (hp * wp)).view(b, 1, 1)
    base = base.reshape(-1)
    if stats is not None:
        a, shift = adain_coeffs(stats, idx)  # B×M×kk×C
        # repeated over the g×g sub-pixels once, so each term's AdaIN is one contiguous multiply-add
        a = a.reshape(-1, 1, c).expand(-1, g * g, c).reshape(-1, g * g * c)
        shift = shift.reshape(-1, 1, c).expand(-1, g * g, c).reshape(-1, g * g * c)
    acc = features.new_zeros(b, kk, h, g, w, g, c)
    rows = features.new_empty(base.numel(), g * g * c)
    pos = torch.empty_like(base)
    for py in range(p):
        iy = _valid(m1, py, t, qpads[0], h)
        if iy is None:
            continue
        for px in range(p):
            ix = _valid(m2, px, t, qpads[2], w)
            if ix is None:
                continue
            torch.add(base, py * wp + px, out=pos)
            torch.index_select(src, 0, pos, out=rows)
            if stats is not None:
                torch.addcmul(shift, rows, a, out=rows)
            r = rows.view(b, m1, m2, kk, g, g, c).permute(0, 3, 1, 4, 2, 5, 6)[:, :, iy[0], :, ix[0]]
            acc[:, :, iy[1], :, ix[1]].add_(r)
    count_r = _count_1d(m1, p, t, features)[qpads[0]: qpads[0] + h]
    count_c = _count_1d(m2, p, t, features)[qpads[2]: qpads[2] + w]
    acc.mul_((1.0 / (count_r[:, None] * count_c[None, :])).view(1, 1, h, 1, w, 1, 1))
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
