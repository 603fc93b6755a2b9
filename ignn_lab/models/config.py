"""Frozen dataclass configs of the networks (STYLE §6): every switch is a typed field, ``from_dict`` rejects
unknown keys, and the defaults reproduce the paper / the released code.

* :class:`EDSRConfig` — EDSR (Lim et al. 2017).
* :class:`GraphConfig` — the switches of :class:`~ignn_lab.models.aggregation.GraphAggregation`.
* :class:`IGNNConfig` — the IGNN backbone around it (or, with ``aggregation="nonlocal"``, the non-local
  baseline).

``model_config_from_dict`` rebuilds any of them from ``to_dict()`` output (the ``arch`` key says which).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ignn_lab.graph.knn import BACKENDS as KNN_BACKENDS

EdgeWeighting = Literal["ecn", "uniform", "distance"]
EmbeddingKind = Literal["vgg-random", "vgg19", "pixel", "features"]
WindowCentering = Literal["corrected", "released"]
WindowMode = Literal["per-call", "sticky"]
Aggregation = Literal["graph", "nonlocal"]

SCALES = (2, 3, 4)
EDGE_WEIGHTINGS = ("ecn", "uniform", "distance")
EMBEDDINGS = ("vgg-random", "vgg19", "pixel", "features")
CENTERINGS = ("corrected", "released")
WINDOW_MODES = ("per-call", "sticky")
AGGREGATIONS = ("graph", "nonlocal")
#: The body shared by ``edsr-lite`` and ``ignn-lite`` (so the two compare on the same body), sized for CPU
#: training; docs/models.md says how it was chosen.
LITE_BODY = {"n_feats": 32, "n_resblocks": 20, "res_scale": 1.0, "hr_feats": 16}

__all__ = ["EDSRConfig", "GraphConfig", "IGNNConfig", "LITE_BODY", "ModelConfig", "graph_scale_for",
           "model_config_from_dict"]


def graph_scale_for(scale: int) -> int:
    """The graph scale g of the released IGNN: 3 for ×3, else 2 (×2 and ×4)."""
    _check_choice("scale", scale, SCALES)
    return 3 if scale == 3 else 2


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def _check_int(name: str, value: Any, lo: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} ({value!r})")


class _DictConfig:
    """``to_dict`` / ``from_dict`` of the configs: plain (nested) dicts; ``from_dict`` rejects unknown keys."""

    arch: ClassVar[str]
    #: to_dict carries an ``arch`` key (model configs: ``model_config_from_dict`` dispatches on it)
    _tagged: ClassVar[bool] = True

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (with ``arch`` for a model config; ``model_config_from_dict`` inverts it)."""
        fields = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {"arch": self.arch, **fields} if self._tagged else fields

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Build from a (nested) dict; unknown keys, at any level, raise ValueError."""
        return _from_dict(cls, data)


def _from_dict(cls, data: dict[str, Any]):
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}.from_dict expects a dict, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names - {"arch"})
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; accepted keys: {sorted(names)}")
    arch = data.get("arch", cls.arch)
    if arch != cls.arch:
        raise ValueError(f"{cls.__name__} is for arch {cls.arch!r}, got arch {arch!r}")
    return cls(**{k: v for k, v in data.items() if k != "arch"})


@dataclass(frozen=True)
class _BodyConfig(_DictConfig):
    """The residual body both networks share (their first six fields)."""

    scale: int = 2
    n_feats: int = 256
    n_resblocks: int = 32
    res_scale: float = 0.1
    rgb_range: float = 255.0
    hr_feats: int | None = None

    def __post_init__(self) -> None:
        _check_choice("scale", self.scale, SCALES)
        _check_int("n_feats", self.n_feats)
        _check_int("n_resblocks", self.n_resblocks, 0)
        if self.hr_feats is not None:
            _check_int("hr_feats", self.hr_feats)


@dataclass(frozen=True)
class EDSRConfig(_BodyConfig):
    """EDSR. Defaults: the paper model (32 blocks × 256, residual scaling 0.1).

    Attributes:
        scale: 2, 3 or 4.
        n_feats: feature width C.
        n_resblocks: residual blocks R.
        res_scale: residual scaling inside each block.
        rgb_range: the network works on images in [0, rgb_range] (255 as EDSR and the IGNN release).
        hr_feats: width of the features at the output resolution (after the upsampler); None: ``n_feats``
            (the paper). The lite models narrow it, which cuts the convolution work at the output size.
    """

    arch = "edsr"


@dataclass(frozen=True)
class GraphConfig(_DictConfig):
    """Switches of the graph aggregation (spec §4–§5). Defaults: the paper / released network.

    Attributes:
        k: neighbours per query patch.
        patch_size, stride: LR patch geometry (3, 2); neighbours are ``g·patch_size`` HR patches.
        window: search window side in son-grid patches (30), or None for a global search.
        window_centering: ``corrected`` (``⌊i/g⌋ - ⌊s/2⌋``) or ``released`` (``⌊i/2⌋ - ⌊s/g⌋``, spec §9.2).
        window_mode: ``per-call`` (each call decides from its own grid) or ``sticky`` (the release: once a
            call's window covers the son grid, this model instance searches globally from then on, spec §9.1).
        embedding: what patches are matched in: ``vgg-random`` (the release's frozen random VGG head),
            ``vgg19`` (ImageNet conv1_1/conv1_2), ``pixel`` (mean-shifted RGB) or ``features`` (the network's
            own features at the graph position, computed for the LR and the son by the layers before it,
            detached).
        adapn: AdaIN-normalise each neighbour patch to its query's statistics (``WITH_ADAIN_NROM``).
        edge_weighting: ``ecn`` (learned weight nets on the patch differences, the release), ``uniform``
            (1/k) or ``distance`` (softmax of ``-d_r / mean_r(d)`` per query, parameter free).
        edge_channels: width of the ``ecn`` weight nets (64 in the release).
        agg_channels: aggregate a 1×1-projected C_a-channel copy of the features instead of all C (None: C,
            the release). Shrinks ``knn_downsample`` by (C_a/C)² and the fusion convs' extra inputs to C_a;
            the lite models use it for speed.
        cross_scale: True: neighbours come from the son (cross-scale); False: same-scale kNN in the LR image
            itself (self excluded), neighbours enlarged g× by nearest neighbour, so they carry no HR detail.
        hr_skip: feed the aggregated HR features into the upsampler (``fuse_up``).
        knn_backend: backend of :func:`ignn_lab.graph.cross_scale_knn`.
        embedding_seed: seed of the ``vgg-random`` head for freshly built models (loaded weights override it).
    """

    k: int = 5
    patch_size: int = 3
    stride: int = 2
    window: int | None = 30
    window_centering: WindowCentering = "corrected"
    window_mode: WindowMode = "per-call"
    embedding: EmbeddingKind = "vgg-random"
    adapn: bool = True
    edge_weighting: EdgeWeighting = "ecn"
    edge_channels: int = 64
    agg_channels: int | None = None
    cross_scale: bool = True
    hr_skip: bool = True
    knn_backend: str = "auto"
    embedding_seed: int = 0

    arch = "graph"
    _tagged = False  # passed as keyword arguments (GraphAggregation), so no arch key

    def __post_init__(self) -> None:
        _check_int("k", self.k)
        _check_int("patch_size", self.patch_size)
        _check_int("stride", self.stride)
        if self.stride > self.patch_size:
            raise ValueError(f"stride ({self.stride}) must not exceed patch_size ({self.patch_size})")
        if self.window is not None:
            _check_int("window", self.window)
        _check_choice("window_centering", self.window_centering, CENTERINGS)
        _check_choice("window_mode", self.window_mode, WINDOW_MODES)
        _check_choice("embedding", self.embedding, EMBEDDINGS)
        _check_bool("adapn", self.adapn)
        _check_choice("edge_weighting", self.edge_weighting, EDGE_WEIGHTINGS)
        _check_int("edge_channels", self.edge_channels)
        if self.agg_channels is not None:
            _check_int("agg_channels", self.agg_channels)
        _check_bool("cross_scale", self.cross_scale)
        _check_bool("hr_skip", self.hr_skip)
        _check_choice("knn_backend", self.knn_backend, KNN_BACKENDS)
        _check_int("embedding_seed", self.embedding_seed, 0)


@dataclass(frozen=True)
class IGNNConfig(_BodyConfig):
    """IGNN (spec §1, §6). Defaults: the paper model (C = 256, R = 32, graph after block 16).

    Attributes:
        scale: 2, 3 or 4 (the graph scale g is 3 for ×3, else 2).
        n_feats, n_resblocks, res_scale, rgb_range, hr_feats: as in :class:`EDSRConfig` (``hr_feats`` is also
            the width of ``fuse_up``, which works at g× the LR size).
        graph_position: number of residual blocks before the graph (None: ``n_resblocks // 2``, the paper).
        aggregation: ``graph`` (IGNN) or ``nonlocal`` (a same-scale non-local block at the same position, no
            HR skip: the non-local baseline).
        nonlocal_region: with ``aggregation="nonlocal"``, attend within cells of this side (region-level, as
            in RNAN / SAN) instead of over the whole image (None: dense).
        graph: the :class:`GraphConfig` switches (used when ``aggregation == "graph"``).
    """

    arch = "ignn"
    graph_position: int | None = None
    aggregation: Aggregation = "graph"
    nonlocal_region: int | None = None
    graph: GraphConfig = field(default_factory=GraphConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice("aggregation", self.aggregation, AGGREGATIONS)
        if self.nonlocal_region is not None:
            _check_int("nonlocal_region", self.nonlocal_region)
            if self.aggregation != "nonlocal":
                raise ValueError(f"nonlocal_region={self.nonlocal_region} applies to aggregation='nonlocal' "
                                 f"only, got aggregation={self.aggregation!r}")
        if isinstance(self.graph, dict):  # tolerate a nested dict (e.g. from JSON); still strict on keys
            object.__setattr__(self, "graph", GraphConfig.from_dict(self.graph))
        if not isinstance(self.graph, GraphConfig):
            raise TypeError(f"graph must be a GraphConfig or dict, got {type(self.graph).__name__}")
        if self.graph_position is not None:
            _check_int("graph_position", self.graph_position, 0)
            if self.graph_position > self.n_resblocks:
                raise ValueError(f"graph_position must be in [0, n_resblocks={self.n_resblocks}], "
                                 f"got {self.graph_position}")

    @property
    def graph_scale(self) -> int:
        """g: 3 for ×3, else 2."""
        return graph_scale_for(self.scale)

    @property
    def position(self) -> int:
        """The resolved graph position (blocks before the graph)."""
        return self.n_resblocks // 2 if self.graph_position is None else self.graph_position

    def replace(self, **overrides: Any) -> IGNNConfig:
        """A copy with fields changed; graph switches may be given flat (``k=3``) or as ``graph={...}``."""
        return _replace_ignn(self, overrides)


def _replace_ignn(cfg: IGNNConfig, overrides: dict[str, Any]) -> IGNNConfig:
    top = {f.name for f in dataclasses.fields(IGNNConfig)}
    gnames = {f.name for f in dataclasses.fields(GraphConfig)}
    unknown = sorted(set(overrides) - top - gnames)
    if unknown:
        raise ValueError(f"unknown IGNN option(s) {unknown}; accepted: {sorted(top - {'graph'})} and the "
                         f"graph switches {sorted(gnames)}")
    graph = overrides.get("graph", cfg.graph)
    if isinstance(graph, dict):
        graph = GraphConfig.from_dict({**cfg.graph.to_dict(), **graph})
    gover = {k: v for k, v in overrides.items() if k in gnames}
    if gover:
        graph = dataclasses.replace(graph, **gover)
    rest = {k: v for k, v in overrides.items() if k in top and k != "graph"}
    return dataclasses.replace(cfg, graph=graph, **rest)


ModelConfig = EDSRConfig | IGNNConfig


def model_config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Rebuild a model config from ``config.to_dict()`` (dispatch on ``arch``: ``edsr`` or ``ignn``)."""
    if not isinstance(data, dict):
        raise TypeError(f"a model config must be a dict, got {type(data).__name__}")
    arch = data.get("arch")
    if arch == "edsr":
        return EDSRConfig.from_dict(data)
    if arch == "ignn":
        return IGNNConfig.from_dict(data)
    raise ValueError(f"unknown model arch {arch!r}; accepted: 'edsr', 'ignn'")
