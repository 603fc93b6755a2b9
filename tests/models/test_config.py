"""Config dataclasses: strict from_dict, validation, round trips, flat and nested overrides."""

import dataclasses

import pytest

from ignn_lab.models.config import EDSRConfig, GraphConfig, IGNNConfig, model_config_from_dict


def test_round_trip():
    cfg = IGNNConfig(scale=3, n_feats=16).replace(k=3, window=None, embedding="pixel", graph_position=1)
    d = cfg.to_dict()
    assert d["arch"] == "ignn" and d["graph"]["k"] == 3 and d["graph"]["window"] is None
    assert model_config_from_dict(d) == cfg
    assert model_config_from_dict(EDSRConfig(scale=4).to_dict()) == EDSRConfig(scale=4)


def test_unknown_keys_rejected():
    with pytest.raises(ValueError, match=r"unknown IGNNConfig keys \['kk'\]"):
        IGNNConfig.from_dict({"arch": "ignn", "kk": 3})
    with pytest.raises(ValueError, match=r"unknown GraphConfig keys \['windw'\]"):
        IGNNConfig.from_dict({"graph": {"windw": 3}})
    with pytest.raises(ValueError, match="unknown EDSRConfig keys"):
        EDSRConfig.from_dict({"graph": {}})
    with pytest.raises(ValueError, match="unknown model arch"):
        model_config_from_dict({"arch": "srcnn"})
    with pytest.raises(ValueError, match="unknown IGNN option"):
        IGNNConfig().replace(windw=3)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"k": 0}, ValueError, "k must be >= 1"),
    ({"k": 2.0}, TypeError, "k must be an int"),
    ({"window": 0}, ValueError, "window"),
    ({"edge_weighting": "softmax"}, ValueError, "edge_weighting must be one of"),
    ({"embedding": "vgg16"}, ValueError, "embedding must be one of"),
    ({"adapn": 1}, TypeError, "adapn must be a bool"),
    ({"window_mode": "global"}, ValueError, "window_mode"),
    ({"window_centering": "centred"}, ValueError, "window_centering"),
    ({"stride": 4}, ValueError, "stride"),
])
def test_graph_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        GraphConfig(**kwargs)


def test_ignn_validation():
    with pytest.raises(ValueError, match="scale"):
        IGNNConfig(scale=8)
    with pytest.raises(ValueError, match="graph_position"):
        IGNNConfig(n_resblocks=4, graph_position=5)
    with pytest.raises(ValueError, match="aggregation"):
        IGNNConfig(aggregation="attention")
    assert IGNNConfig(scale=3).graph_scale == 3 and IGNNConfig(scale=4).graph_scale == 2
    assert IGNNConfig(n_resblocks=7).position == 3


def test_frozen():
    cfg = IGNNConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.scale = 3
