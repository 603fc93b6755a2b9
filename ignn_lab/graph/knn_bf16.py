"""Shortlist keys from a bfloat16 GEMM, with proven lower bounds: the fast path of windowed search on CPU.

On CPUs with native bfloat16 dot products (AVX512-BF16, AMX) a bfloat16 GEMM runs about 2.2× faster than a
float32 one, and the GEMM is most of a windowed search with 576-d patches. Results stay exact: the GEMM only
ranks candidates for the shortlist; every number that decides what is excluded is a proven lower bound of
the true squared distance, and the exact recompute, certification and rescan are those of the fused C
kernel (:mod:`~ignn_lab.graph.kernels`), which also writes the augmented rows below.

Derivation (``u = 2⁻⁸``, bfloat16's unit round-off; ``c`` the tile's centre). ``Q = bf16(q − c)`` and
``S = bf16(s − c)`` differ from the exact centred vectors by ``‖ΔQ‖ ≤ e = c₁‖Q‖`` and ``‖ΔS‖ ≤ f = c₁‖S‖``
(:data:`C1` covers the float32 centring too). Then

    d = ‖(Q − S) + (ΔQ − ΔS)‖² ≥ ‖Q − S‖² − 2‖Q − S‖(e + f) ≥ (1 − t)‖Q − S‖² − (e + f)²/t

for any ``t`` in (0, 1) (``2ab ≤ ta² + b²/t``); with ``κ = 1/(t(1 − t))`` this is
``(1 − t)·[‖Q − S‖² − κ(2ef + f²)] − e²/t``. The bracket is one GEMM of augmented rows,

    query:     [ Q,   1,  1,  hq, lq, −2κe, −κ ]
    candidate: [ −2S, hs, ls, 1,  1,  f,    f² ]

with the squared norms (shrunk by ``1 − γ``, :func:`bf16_gamma`, for the GEMM's float32 accumulation) split
into high and low bfloat16 parts and the margin coordinates rounded up. The GEMM's float32 result ``y`` is
rounded to bfloat16 once, so ``y ≥ key − u/(1−u)·|key|``; the lower bound of a key is therefore
``(1 − t)(key − u/(1−u)·|key|) − e²/t − slack`` (:func:`bound_map`; ``slack`` covers subnormals flushed to
zero). Measured on Urban100 ×2 (576-d): with tile centring and ``k + 5`` shortlisted, ≈ 95 % of rows are
certified by the shortlist; the rest are rescanned exactly inside the kernel.

:func:`bf16_keys_check` requires native bfloat16 dot products and checks once per process and GEMM width that
this CPU's bfloat16 GEMM meets that error model (float32 accumulation, one rounding of the result); otherwise
the float32 path runs.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from ignn_lab.graph.knn_exact import max_abs_within

__all__ = ["C1", "KAPPA_UP", "MAX_ABS", "MIN_DIM", "SHORTLIST_EXTRA_BF16", "T_SPLIT", "UP", "bf16_gamma",
           "bf16_keys_check", "bound_map", "key_width"]

_U = 2.0 ** -8  # bfloat16 unit round-off
_U32 = 2.0 ** -24
#: ‖x − bf16(fl(x))‖ ≤ C1·‖bf16(fl(x))‖ for the exact centred vector x (componentwise, hence in norm).
C1 = (_U + 2 * _U32) / (1 - _U)
#: ``t`` of the bound: on Urban100 ×2 (576-d) 0.01–0.02 certify the most rows (0.005: −3 %, 0.05: −4 %).
T_SPLIT = 0.01
#: × before rounding to bfloat16 makes the rounded value ≥ the original.
UP = 1 + 2.0 ** -7
#: κ = 1/(t(1 − t)) rounded up to a bfloat16 value.
KAPPA_UP = float(torch.tensor(UP / (T_SPLIT * (1 - T_SPLIT))).bfloat16())
#: Inputs within ±MAX_ABS keep every key and norm far inside float32's range.
MAX_ABS = 1e12
#: Extra shortlisted candidates beyond k: bfloat16 keys are coarser than float32 bounds.
SHORTLIST_EXTRA_BF16 = 5
#: ``engine="auto"`` keeps the float32 GEMM for fewer patch dimensions than this (the GEMM is a small part of
#: the work there).
MIN_DIM = 64
_EXTRA = 6  # hs, ls, 1, 1, f, f² (and their query partners)


def key_width(dim: int) -> int:
    """Columns of the augmented rows: the patch and six bound coordinates."""
    return dim + _EXTRA


def bf16_gamma(dim: int, width: int) -> float:
    """Shrink of the squared norms: their float64-summed, float32-rounded values; the float32 accumulation of
    a length-``width`` GEMM over terms summing to ≤ 2.1(‖Q‖² + ‖S‖²); the low parts' rounding."""
    return (4 * (dim + width) + 64) * _U32 + 4 * _U * _U


def bound_map(row_term: Tensor, max_abs: float, width: int) -> tuple[Tensor, float, float, float]:
    """``(row_term, scale, rel, slack)`` of the key → lower bound map for the kernel. The slack bounds the
    subnormals a GEMM may flush to zero: ≤ 2⁻¹²⁶ per product (each partner is ≤ 64·max|x| + 130 by
    construction) and per addition, over ``width`` terms."""
    slack = width * 2.0 ** -126 * (64 * max_abs + 130) * 2
    return row_term, 1 - T_SPLIT, _U / (1 - _U), slack


@lru_cache(maxsize=None)
def _gemm_checked(width: int) -> bool:
    """Does this CPU's bfloat16 GEMM meet the error model at this width (float32 accumulation, one rounding of
    the result)? Checked once per width on random data with mixed magnitudes. (Speed is not measured: it would
    make the engine depend on the machine's load; native bfloat16 dot products are what make it pay.)"""
    gen = torch.Generator().manual_seed(width)
    a = (torch.randn((4, 96, width), generator=gen) * torch.rand((4, 96, 1), generator=gen) * 8).bfloat16()
    b = (torch.randn((4, 640, width), generator=gen) * torch.rand((4, 640, 1), generator=gen) * 8).bfloat16()
    with torch.inference_mode():
        out = torch.bmm(a, b.transpose(1, 2)).double()
        exact = torch.bmm(a.double(), b.double().transpose(1, 2))
        terms = torch.bmm(a.double().abs(), b.double().abs().transpose(1, 2))
    allowed = _U * (exact.abs() + 2 * width * _U32 * terms) + 2 * width * _U32 * terms
    return bool(((out - exact).abs() <= allowed).all())


def bf16_keys_check(query: Tensor, son: Tensor, dim: int) -> tuple[float | None, str]:
    """``(max |input|, "")`` when bfloat16 keys apply to these inputs, else ``(None, why not)``: float32 CPU
    tensors, finite entries within ±:data:`MAX_ABS`, a CPU with native bfloat16 dot products whose GEMM passes
    :func:`_gemm_checked` (the caller also needs the C kernels)."""
    if query.dtype != torch.float32 or query.device.type != "cpu":
        return None, f"bfloat16 keys need float32 CPU tensors, got {query.dtype} on {query.device}"
    if not (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return None, "this CPU has no native bfloat16 dot products (AVX512-BF16 or AMX)"
    amax = max_abs_within((query, son), MAX_ABS)
    if amax is None:
        return None, f"inputs must be finite and within ±{MAX_ABS:g} for bfloat16 keys"
    if not _gemm_checked(key_width(dim)):
        return None, "this CPU's bfloat16 GEMM does not meet the error model of the bounds"
    return amax, ""
