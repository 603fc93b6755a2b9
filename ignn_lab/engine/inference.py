"""Run a super-resolution network on whole images: tiling, ×8 self-ensemble, precision and model loading.

``model_predictor`` turns a network (a module, a kit checkpoint, a released IGNN checkpoint or a registry name)
into a :class:`ModelPredictor`: uint8 C×H×W LR → uint8 C×sH×sW SR, the Predictor of ``docs/CONTRACTS.md``.

Tiling (see ``engine.tiling.tile_rules``): large images are cut into overlapping square tiles whose starts are
multiples of an alignment, so that IGNN's stride-2 patch grid, its son grid (LR/g) and its search windows fall
exactly where they fall in the whole image; each tile's son is *cropped from the whole-image son*, as the
release's Chop does, never re-resized. Every output pixel comes from the tile in which it lies farthest from a seam.
"""

from __future__ import annotations

import math
import os
import warnings
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from ignn_lab.data.convert import on_rgb
from ignn_lab.data.degrade import make_son
from ignn_lab.engine.options import PredictOptions
from ignn_lab.engine.tiling import (max_square_tile, peak_activation_bytes, receptive_radius, search_latched,
                                    tile_rules, tile_spans)

__all__ = ["ModelPredictor", "model_predictor", "network_predictor", "resolve_model", "self_ensemble",
           "DEFAULT_OVERLAP", "DEFAULT_BUDGET_GB_CPU"]

DEFAULT_OVERLAP = 32  # LR pixels of context per inner tile side (capped at the model's receptive radius)
DEFAULT_BUDGET_GB_CPU = 4.0  # activation budget of one tile on CPU; on CUDA: half the device memory


def _d4(x: Tensor, i: int, inverse: bool = False) -> Tensor:
    """The i-th of the 8 flips/transposes of the last two dims (or its inverse)."""
    hflip, vflip, transpose = bool(i & 1), bool(i & 2), bool(i & 4)
    if inverse and transpose:
        x = x.transpose(-1, -2)
    if hflip:
        x = x.flip(-1)
    if vflip:
        x = x.flip(-2)
    if not inverse and transpose:
        x = x.transpose(-1, -2)
    return x


def self_ensemble(fn, lr: Tensor) -> Tensor:
    """×8 self-ensemble: the mean of ``T⁻¹(fn(T(lr)))`` over the 8 flips/transposes T.

    Args:
        fn: B×C×H×W → B×C'×sH×sW (must accept the transposed shape W×H).
        lr: B×C×H×W floating.

    Returns:
        B×C'×sH×sW, the average of the 8 un-transformed outputs (float, unclamped).
    """
    acc = None
    for i in range(8):
        y = _d4(fn(_d4(lr, i).contiguous()), i, inverse=True)
        acc = y.clone() if acc is None else acc.add_(y)
    return acc / 8


class ModelPredictor:
    """A network as a Predictor: uint8 C×H×W (C ∈ {1, 3}) → uint8 C×sH×sW. Not thread safe.

    Build it with :func:`model_predictor`. ``upscale_float`` gives the float output before rounding.

    Attributes:
        name: shown in result tables ("+" appended with self-ensemble, as IGNN+).
        parallel_safe: False (one forward at a time).
        model, scale, device, dtype, self_ensemble, tile, overlap, budget_bytes, rules: the settings.
        source: where the network came from (``kind``: module, checkpoint, released checkpoint, shipped
            checkpoint or registry; ``path`` or ``name``), for the provenance.
        bytes_per_pixel: measured activation bytes per LR pixel (None until a budget decision needed it;
            see :meth:`memory_model`).
        last_tiles: number of tiles the last call used per variant (1 = untiled).
    """

    parallel_safe = False
    min_lr_side = 1  # smaller images are edge-padded to the network's minimum and cropped back

    def __init__(self, model: nn.Module, scale: int, *, name: str, device: torch.device, dtype: torch.dtype,
                 self_ensemble: bool, tile: int | None, overlap: int | str | None, budget_bytes: float,
                 progress: bool = True, source: dict | None = None):
        self.model, self.scale, self.name = model, scale, name
        self.source = source if source is not None else {"kind": "module", "class": type(model).__name__}
        self.settings: dict = {}
        self.device, self.dtype, self.self_ensemble = device, dtype, self_ensemble
        self.rules = tile_rules(model, scale)
        radius = receptive_radius(model, scale)
        ov = min(DEFAULT_OVERLAP, radius) if overlap is None else overlap
        if ov == "exact":
            if not self.rules.exact:
                raise ValueError(f"overlap='exact' is impossible for {name}: {self.rules.reason}")
            ov = radius
        if not isinstance(ov, int) or isinstance(ov, bool) or ov < 0:
            raise ValueError(f"overlap must be an int ≥ 0 (LR pixels), 'exact' or None, got {overlap!r}")
        self.overlap = ov
        self.tile = None if tile is None else self._check_tile(tile)
        self.budget_bytes = budget_bytes
        self.bytes_per_pixel: float | None = None
        self._beta = 0.0
        self.progress = progress
        self.last_tiles = 1
        self._warned: set[str] = set()

    def _check_tile(self, tile: int) -> int:
        if not isinstance(tile, int) or isinstance(tile, bool) or tile < 1:
            raise ValueError(f"tile must be a positive int (LR pixels per tile side) or None, got {tile!r}")
        r = self.rules
        low = max(r.min_tile if r.exact else 1, 2 * self.overlap + r.align, r.min_side)
        if tile < low:
            raise ValueError(
                f"tile={tile} is too small for {self.name}: tiles need at least {low} LR pixels (overlap "
                f"{self.overlap} on both sides, alignment {r.align}, and a son patch grid larger than the search "
                f"window so each tile's graph equals the whole image's); use tile ≥ {low} or tile=None")
        return tile

    def _warn_once(self, msg: str) -> None:
        if msg not in self._warned:
            self._warned.add(msg)
            warnings.warn(msg, stacklevel=3)

    def _forward(self, lr: Tensor, son: Tensor | None) -> Tensor:
        ctx = (torch.autocast("cuda", dtype=self.dtype) if self.dtype in (torch.bfloat16, torch.float16)
               else nullcontext())
        with ctx:
            out = self.model(lr, son) if son is not None else self.model(lr)
        return out.to(lr.dtype)

    def _son(self, lr: Tensor) -> Tensor | None:
        """The whole-image son by the model's own rule (``model.son_of``, else ``make_son``), or None."""
        if not getattr(self.model, "needs_son", False):
            return None
        son_of = getattr(self.model, "son_of", None)
        return son_of(lr) if callable(son_of) else make_son(lr, self.rules.graph_scale)

    def _probe(self, side: int) -> float:
        gen = torch.Generator().manual_seed(0)
        x = torch.rand((1, 3, side, side), generator=gen).to(self.device, self._compute_dtype())
        son = self._son(x)
        with torch.inference_mode():
            return float(max(peak_activation_bytes(lambda: self._forward(x, son)), 1))

    def memory_model(self) -> tuple[float, float]:
        """Activation bytes of one forward as ``alpha·P + beta·P²`` for P LR pixels, measured once.

        Local models (``rules.exact``) are probed once on a square at least one minimal tile wide (beta = 0);
        models with a global search or dense attention are probed at two sizes to fit the quadratic term.

        Returns:
            (alpha, beta): bytes per pixel and per pixel².
        """
        if self.bytes_per_pixel is None:
            r = self.rules
            side = self._probe_side()
            p1 = side * side
            b1 = self._probe(side)
            if r.exact:
                self._beta = 0.0
                self.bytes_per_pixel = b1 / p1
            else:
                side2 = math.ceil(side * 1.5 / r.align) * r.align
                p2 = side2 * side2
                b2 = self._probe(side2)
                beta = max((b2 / p2 - b1 / p1) / (p2 - p1), 0.0)
                self._beta = beta
                self.bytes_per_pixel = max(b1 / p1 - beta * p1, b2 / p2 - beta * p2, 0.0)
        return self.bytes_per_pixel, self._beta

    def _probe_side(self) -> int:
        r = self.rules
        return math.ceil(max(64, r.min_tile, r.min_side) / r.align) * r.align

    def estimate_bytes(self, h: int, w: int) -> float:
        """Estimated activation bytes of an untiled forward on an h×w LR image."""
        alpha, beta = self.memory_model()
        p = float(h) * float(w)
        return alpha * p + beta * p * p

    def _compute_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype == torch.float64 else torch.float32

    def tile_side(self, h: int, w: int) -> int | None:
        """The tile side for an h×w LR image: ``tile``, or from the memory budget; None = untiled.

        Images no larger than the memory probe (64² LR pixels, or one minimal tile) always run untiled.
        """
        if self.tile is not None:
            return self.tile if max(h, w) > self.tile else None
        if h * w <= self._probe_side() ** 2:  # no larger than the probe itself: run it whole
            return None
        if self.estimate_bytes(h, w) <= self.budget_bytes:
            return None
        r = self.rules
        alpha, beta = self.memory_model()
        budget = self.budget_bytes
        pix = budget / alpha if beta == 0 else (-alpha + math.sqrt(alpha * alpha + 4 * beta * budget)) / (2 * beta)
        side = max_square_tile(1.0, pix, r.align)
        low = max(r.min_tile if r.exact else 1, 2 * self.overlap + r.align, r.min_side)
        if side < low:
            self._warn_once(f"{self.name}: a memory budget of {budget / 2**30:.2f} GB allows tiles of "
                            f"{side} px, below the minimum of {low}; using {low}")
            side = math.ceil(low / r.align) * r.align
        return side

    def _run_tiled(self, lr: Tensor) -> Tensor:
        """1×3×H×W float on the device → 1×3×sH×sW float (one variant, tiled when needed)."""
        r, s = self.rules, self.scale
        h, w = lr.shape[-2:]
        ph, pw = max(r.min_side - h, 0), max(r.min_side - w, 0)
        if ph or pw:  # too small for the network's patch grid: edge-pad bottom/right, crop the output
            self._warn_once(f"{self.name}: images under {r.min_side}×{r.min_side} LR pixels are edge-padded")
            lr = F.pad(lr, (0, pw, 0, ph), mode="replicate")
        son = self._son(lr)
        side = self.tile_side(*lr.shape[-2:])
        if side is None:
            self.last_tiles = 1
            out = self._forward(lr, son)
        else:
            reason = r.reason or ("window_mode='sticky' has switched this model to global search"
                                  if search_latched(self.model) else "")
            if reason:
                self._warn_once(f"{self.name}: tiles cannot equal the untiled output ({reason}); "
                                f"results near and across tiles differ from an untiled run")
            out = self._stitch(lr, son, side)
        return out[..., : h * s, : w * s]

    def _stitch(self, lr: Tensor, son: Tensor | None, side: int) -> Tensor:
        r, s, g = self.rules, self.scale, self.rules.graph_scale
        H, W = lr.shape[-2:]
        rows = tile_spans(H, side, self.overlap, r.align)
        cols = tile_spans(W, side, self.overlap, r.align)
        self.last_tiles = len(rows) * len(cols)
        out = None
        bar = tqdm(total=len(rows) * len(cols), desc=f"{self.name} tiles", leave=False,
                   disable=not self.progress or len(rows) * len(cols) < 4)
        for ry in rows:
            for cx in cols:
                lr_t = lr[..., ry.start: ry.stop, cx.start: cx.stop]
                son_t = None
                if son is not None:  # the whole-image son, cropped: tile starts are multiples of g
                    y0, x0 = ry.start // g, cx.start // g
                    son_t = son[..., y0: y0 + (ry.stop - ry.start) // g, x0: x0 + (cx.stop - cx.start) // g]
                y = self._forward(lr_t, son_t)
                if out is None:
                    out = y.new_empty((*y.shape[:2], H * s, W * s))
                out[..., ry.keep_start * s: ry.keep_stop * s, cx.keep_start * s: cx.keep_stop * s] = y[
                    ..., (ry.keep_start - ry.start) * s: (ry.keep_stop - ry.start) * s,
                    (cx.keep_start - cx.start) * s: (cx.keep_stop - cx.start) * s]
                bar.update()
        bar.close()
        return out

    def upscale_float(self, lr: Tensor) -> Tensor:
        """B=1 float forward with tiling and (optionally) self-ensemble.

        Args:
            lr: 1×3×H×W float in [0, 1] (any device; moved to the predictor's).

        Returns:
            1×3×sH×sW float (float32, or float64 with dtype float64), unclamped, on the predictor's device.
        """
        if lr.ndim != 4 or lr.shape[0] != 1 or lr.shape[1] != 3 or not lr.is_floating_point():
            raise ValueError(f"upscale_float expects a 1×3×H×W float tensor, got {tuple(lr.shape)} {lr.dtype}")
        lr = lr.to(self.device, self._compute_dtype())
        with torch.inference_mode():
            if self.self_ensemble:
                return self_ensemble(self._run_tiled, lr)
            return self._run_tiled(lr)

    def __call__(self, lr: Tensor) -> Tensor:
        """uint8 C×H×W (C = 1 or 3) → uint8 C×sH×sW on the CPU. Grey input: the network sees it replicated to 3
        channels; the result is the channel mean of its output, rounded."""
        return on_rgb(self.upscale_float, lr, device=self.device, dtype=self._compute_dtype())

    def __repr__(self) -> str:
        return (f"ModelPredictor(name={self.name!r}, scale={self.scale}, device={self.device}, dtype={self.dtype}, "
                f"self_ensemble={self.self_ensemble}, tile={self.tile}, overlap={self.overlap})")


def _load_file(path: Path, scale: int, overrides: dict) -> tuple[nn.Module, str]:
    """A kit checkpoint or a released IGNN checkpoint (told apart by content), and its kind."""
    from ignn_lab.models.checkpoint import is_released, read_checkpoint, rebuild
    from ignn_lab.models.official import load_official, released_size

    obj = read_checkpoint(path)
    if is_released(obj):
        state = obj.get("net_state_dict", obj)
        size = {k: v for k, v in released_size(state).items() if k != "scale"}
        return load_official(obj, scale, **{**size, **overrides}, source=str(path)), "released checkpoint"
    return rebuild(obj, path, **overrides), "checkpoint"


def resolve_model(model: nn.Module | str | os.PathLike, scale: int, **build_overrides) -> tuple[nn.Module, str]:
    """The network for ``model`` and a display name (see :func:`resolve_network`)."""
    net, name, _ = resolve_network(model, scale, **build_overrides)
    return net, name


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or Path(text).suffix.lower() in (".pt", ".pth", ".ckpt", ".bin")


def resolve_network(model: nn.Module | str | os.PathLike, scale: int, **build_overrides
                    ) -> tuple[nn.Module, str, dict]:
    """The network a model argument names, its display name and where it came from.

    Args:
        model, in the order tried: an ``nn.Module``; an existing file, a kit checkpoint
            (``ignn_lab.models.save``, the trainer's ``best.pt``) or a released IGNN checkpoint (a dict with
            ``net_state_dict``, loaded with ``ignn_lab.models.load_official``; width and depth read from its
            tensors); a shipped checkpoint name (``ignn_lab.models.pretrained``); a registry name (random
            weights, with a warning).
        scale: the SR factor; must match the network's ``scale``.
        **build_overrides: config fields (e.g. ``window=8``) for anything but an ``nn.Module``; the weights of a
            checkpoint must still fit.

    Returns:
        (module, name, source): source is ``{"kind": ..., "path" or "name": ...}`` for the provenance.
    """
    from ignn_lab.models import build, list_models
    from ignn_lab.models.pretrained import list_pretrained

    if isinstance(model, nn.Module):
        if build_overrides:
            raise ValueError(f"{', '.join(sorted(build_overrides))}: these switches apply to registry names and "
                             f"checkpoints, not to an already built {type(model).__name__}")
        net, name, source = model, type(model).__name__.lower(), {"kind": "module", "class": type(model).__name__}
    elif isinstance(model, (str, os.PathLike)):
        text = str(model)
        path = Path(text).expanduser()
        shipped = list_pretrained()
        if path.is_file():
            net, kind = _load_file(path, scale, build_overrides)
            name, source = path.stem, {"kind": kind, "path": str(path.resolve())}
        elif text in shipped:
            net, kind = _load_file(shipped[text], scale, build_overrides)
            name, source = text, {"kind": "shipped checkpoint", "name": text, "path": str(shipped[text])}
        elif text in list_models():
            try:
                net = build(text, scale, **build_overrides)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{text}: {exc}") from None
            warnings.warn(f"{text}: built from the registry with random weights (untrained); pass a checkpoint "
                          "for meaningful outputs", stacklevel=3)
            name, source = text, {"kind": "registry", "name": text}
        elif path.is_dir():
            raise ValueError(f"{path} is a folder; a model is a checkpoint file, a shipped checkpoint name or a "
                             "registry name")
        elif _looks_like_path(text):
            raise FileNotFoundError(f"no checkpoint file at {path}")
        else:
            names = [*shipped, *list_models()]
            raise ValueError(f"{text!r} is neither an existing checkpoint file nor a shipped or registered model; "
                             f"known: bicubic, graphagg-star, {', '.join(names)}")
    else:
        raise TypeError(f"model must be an nn.Module, a checkpoint path or a model name, got {type(model).__name__}")
    net_scale = getattr(net, "scale", scale)
    if net_scale != scale:
        raise ValueError(f"{name} is a ×{net_scale} network, but scale={scale} was asked for")
    return net, name, source


def network_predictor(model: nn.Module | str | os.PathLike, scale: int, options: PredictOptions | None = None, *,
                      progress: bool = True) -> ModelPredictor:
    """A :class:`ModelPredictor` for a network, from a validated :class:`PredictOptions` (its switches are config
    fields of the network, see :func:`resolve_network`)."""
    opts = options if options is not None else PredictOptions()
    dev, dt = opts.torch_device(), opts.torch_dtype()
    net, name, source = resolve_network(model, scale, **dict(opts.switches))
    net = net.to(dev, torch.float64 if dt == torch.float64 else torch.float32).eval()
    if opts.memory_budget_gb is None:
        budget = (0.5 * torch.cuda.get_device_properties(dev).total_memory if dev.type == "cuda"
                  else DEFAULT_BUDGET_GB_CPU * 2**30)
    else:
        budget = float(opts.memory_budget_gb) * 2**30
    pred = ModelPredictor(net, scale, name=name + ("+" if opts.self_ensemble else ""), device=dev, dtype=dt,
                          self_ensemble=opts.self_ensemble, tile=opts.tile, overlap=opts.overlap,
                          budget_bytes=budget, progress=progress, source=source)
    pred.settings = opts.record()
    return pred


def model_predictor(model: nn.Module | str | os.PathLike, scale: int, *, device: str | torch.device = "cpu",
                    dtype: str | torch.dtype = "float32", self_ensemble: bool = False, tile: int | None = None,
                    memory_budget_gb: float | None = None, overlap: int | str | None = None, progress: bool = True,
                    **build_overrides) -> ModelPredictor:
    """A Predictor (uint8 C×H×W → uint8 C×sH×sW) for a network.

    Args:
        model: an ``nn.Module`` (moved to ``device``/``dtype`` and put in eval mode, in place), a kit checkpoint
            path, a released IGNN checkpoint path, a shipped checkpoint name or a registry name (untrained;
            warns); see :func:`resolve_network`.
        scale: 2, 3 or 4; must match the network.
        device: "cpu" (default; None means "cpu") or "cuda[:N]".
        dtype: "float32" (default; None means "float32"); "float64" (exact comparisons); "bfloat16"/"float16"
            run the float32 network under CUDA autocast and are refused on CPU (ValueError).
        self_ensemble: average the 8 flips/transposes (IGNN+ / EDSR+); the name gets a "+".
        tile: LR tile side including overlap; None: chosen from ``memory_budget_gb`` (untiled when the whole
            image fits).
        memory_budget_gb: activation memory allowed for one tile; default 4 GB on CPU, half the device memory
            on CUDA. Measured once per predictor on a probe image (see ``ModelPredictor.memory_model``).
        overlap: LR pixels of context kept on each inner tile side; default ``min(32, receptive_radius)``.
            ``"exact"`` uses ``engine.tiling.receptive_radius(model, scale)``, which makes the tiled output equal
            the untiled output up to float rounding (ValueError for models where no overlap can).
        progress: show a tqdm bar over tiles when there are 4 or more.
        **build_overrides: config fields for a registry name or a checkpoint.

    Returns:
        A :class:`ModelPredictor` (``.name``, ``.parallel_safe = False``, ``.source``).
    """
    options = PredictOptions.from_kwargs(device=device, dtype=dtype, self_ensemble=self_ensemble, tile=tile,
                                         memory_budget_gb=memory_budget_gb, overlap=overlap, **build_overrides)
    return network_predictor(model, scale, options, progress=progress)
