"""Shared helpers of the graph tests: the independent float64 brute force, its tie mask, test images with
exact ties, and what the machine offers (faiss, a C compiler, native bfloat16).

The brute force shares no code with the package: patches by explicit slicing of a zero-padded canvas,
windows by the spec's formulas, distances as float64 sums of squared differences, ranking by (distance,
index).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from ignn_lab._optional import available

HAS_FAISS = available("faiss")
BACKENDS = ["reference", "torch", "auto"] + (["faiss"] if HAS_FAISS else [])
needs_faiss = pytest.mark.skipif(not HAS_FAISS, reason="faiss not installed")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _has_compiler() -> bool:
    return any(n and shutil.which(n) for n in (os.environ.get("CC"), "cc", "gcc", "clang"))


HAS_KERNELS = _has_compiler() and os.environ.get("IGNN_LAB_KERNELS", "1") != "0"
needs_kernels = pytest.mark.skipif(not HAS_KERNELS, reason="no C compiler (or IGNN_LAB_KERNELS=0)")
HAS_BF16 = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
needs_bf16 = pytest.mark.skipif(not HAS_BF16, reason="CPU without native bfloat16 dot products")


def c_engines() -> list[str]:
    """The C engines this machine can run."""
    return ["c-float32"] + (["c-bf16"] if HAS_BF16 else [])


def _pads(length, p, t):
    pad = (-(length - p)) % t  # Python modulo, as released
    return pad // 2, pad - pad // 2


def loop_im2patch(x, p, t):
    """Patches by explicit indexing of a zero-padded canvas: B×M×(C·p·p), vectors ordered (c, py, px)."""
    B, C, H, W = x.shape
    (top, bottom), (left, right) = _pads(H, p, t), _pads(W, p, t)
    canvas = torch.zeros(B, C, H + top + bottom, W + left + right, dtype=x.dtype)
    canvas[:, :, top: top + H, left: left + W] = x
    gh, gw = (canvas.shape[2] - p) // t + 1, (canvas.shape[3] - p) // t + 1
    out = torch.empty(B, gh * gw, C * p * p, dtype=x.dtype)
    for i in range(gh):
        for j in range(gw):
            out[:, i * gw + j] = canvas[:, :, i * t: i * t + p, j * t: j * t + p].reshape(B, -1)
    return out, (gh, gw), (top, bottom, left, right)


def brute_force(query, son, *, k, window, graph_scale, centering="corrected", patch_size=3, stride=2):
    """float64 brute force: (dist B×M×k, idx B×M×k, sorted B×M×Nc all window distances)."""
    qv, (m1, m2), _ = loop_im2patch(query.double(), patch_size, stride)
    sv, (n1, n2), _ = loop_im2patch(son.double(), patch_size, stride)
    qv, sv = qv.numpy(), sv.numpy()
    glob = window is None or (window >= n1 and window >= n2)
    s = None if glob else min(window, n1, n2)
    table = []  # candidate son indices of every query, from the spec's formulas
    for i in range(m1):
        for j in range(m2):
            if glob:
                table.append(list(range(n1 * n2)))
                continue
            if centering == "corrected":
                r0, c0 = i // graph_scale - s // 2, j // graph_scale - s // 2
            else:
                r0, c0 = i // 2 - s // graph_scale, j // 2 - s // graph_scale
            r0, c0 = min(max(r0, 0), n1 - s), min(max(c0, 0), n2 - s)
            table.append([(r0 + a) * n2 + c0 + c for a in range(s) for c in range(s)])
    table = np.array(table)
    B, M, D = qv.shape
    step = max(1, 2**22 // (table.shape[1] * D))
    dist, idx, everything = [], [], []
    for b in range(B):
        for a in range(0, M, step):
            cand = table[a: a + step]
            d = ((qv[b, a: a + step, None, :] - sv[b][cand]) ** 2).sum(-1)
            order = np.lexsort((cand, d), axis=-1)  # by distance, then by son index
            dist.append(np.take_along_axis(d, order, -1)[:, :k])
            idx.append(np.take_along_axis(cand, order, -1)[:, :k])
            everything.append(np.sort(d, -1))
    shape = (B, M, -1)
    return tuple(torch.from_numpy(np.concatenate(a)).view(shape) for a in (dist, idx, everything))


def tie_free(sorted_all, k, rel=1e-5):
    """B×M×k mask: ranks whose float64 distance is separated from both neighbours by more than ``rel``."""
    inf = torch.full(sorted_all.shape[:-1] + (1,), float("inf"), dtype=sorted_all.dtype)
    d = torch.cat([sorted_all[..., : k + 1], inf], -1)  # +inf: no right neighbour when k = all candidates
    scale = d[..., :k].abs().clamp(min=1e-300)
    gap_next = (d[..., 1: k + 1] - d[..., :k]) > rel * scale
    gap_prev = torch.ones_like(gap_next)
    gap_prev[..., 1:] = (d[..., 1:k] - d[..., : k - 1]) > rel * scale[..., 1:]
    return gap_next & gap_prev


_BRUTE_CACHE: dict = {}


def check_against_brute(g, query, son, *, k, window, graph_scale, centering="corrected", patch_size=3,
                        stride=2, exact_ties=False, cache_key=None):
    if cache_key is None or cache_key not in _BRUTE_CACHE:
        result = brute_force(query, son, k=k, window=window, graph_scale=graph_scale, centering=centering,
                             patch_size=patch_size, stride=stride)
        if cache_key is not None:
            _BRUTE_CACHE[cache_key] = result
    bd, bi, ball = _BRUTE_CACHE[cache_key] if cache_key is not None else result
    assert g.index.dtype == torch.int64 and g.index.shape == bi.shape
    assert g.distance.dtype == query.dtype
    torch.testing.assert_close(g.distance.double(), bd, rtol=1e-5, atol=0)
    if exact_ties:  # ties are exact in the data: indices must match everywhere (lower index wins)
        assert torch.equal(g.index, bi)
    else:
        ok = tie_free(ball, k)
        assert ok.float().mean() > 0.5  # the comparison is not vacuous
        assert torch.equal(g.index[ok], bi[ok])
    assert bool((g.distance[..., 1:] >= g.distance[..., :-1]).all())



def periodic_son(B, C, h, w, period, gen):
    """A son image that repeats every ``period`` pixels along x: patches ``period/stride`` apart are equal."""
    base = torch.randn(B, C, h, period, generator=gen)
    return base.repeat(1, 1, 1, (w + period - 1) // period)[..., :w].contiguous()
