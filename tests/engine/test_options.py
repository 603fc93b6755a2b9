"""``PredictOptions``: one typed, frozen object, validated when built, recorded with real types."""

import json

import pytest

from ignn_lab.engine.options import PredictOptions


def test_defaults_and_record_with_real_types():
    o = PredictOptions.from_kwargs(tile=64, self_ensemble=True, window=None, k=3, dtype="fp64")
    assert (o.tile, o.self_ensemble, o.dtype, dict(o.switches)) == (64, True, "float64", {"window": None, "k": 3})
    assert sorted(o.given()) == ["dtype", "k", "self_ensemble", "tile", "window"]
    rec = json.loads(json.dumps(o.record()))
    assert rec == {"device": "cpu", "dtype": "float64", "tile": 64, "self_ensemble": True, "memory_budget_gb": None,
                   "overlap": None, "window": None, "k": 3}
    assert PredictOptions.from_kwargs(device=None, dtype=None) == PredictOptions()


def test_frozen():
    o = PredictOptions(switches={"k": 3})
    with pytest.raises(AttributeError):
        o.tile = 3
    with pytest.raises(TypeError):
        o.switches["k"] = 4


@pytest.mark.parametrize("kwargs,message", [
    ({"tile": 0}, "tile must be a positive int"), ({"tile": 3.5}, "tile must be"), ({"tile": True}, "tile must"),
    ({"self_ensemble": "yes"}, "self_ensemble must be True or False"),
    ({"dtype": "int8"}, "dtype must be one of float32, float64, bfloat16, float16"),
    ({"dtype": "bfloat16"}, "needs a CUDA device"), ({"device": "tpu"}, "device must be 'cpu', 'cuda'"),
    ({"device": 3}, "device must be"), ({"memory_budget_gb": -1}, "memory_budget_gb must be a positive"),
    ({"memory_budget_gb": float("inf")}, "memory_budget_gb"), ({"overlap": -2}, "overlap must be"),
    ({"window": object()}, "option window=.*not accepted"), ({"k": float("nan")}, "option k=nan")])
def test_bad_values_fail_when_built(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        PredictOptions.from_kwargs(**kwargs)


def test_check_applies_names_every_refused_option():
    o = PredictOptions.from_kwargs(tile=48, k=4)
    o.check_applies("m", ["tile", "k"], "why")
    with pytest.raises(ValueError, match=r"tile=48, k=4 do not apply to m \(why\); m takes device"):
        o.check_applies("m", ["device"], "why")
    with pytest.raises(ValueError, match="m takes no options"):
        o.check_applies("m", [], "why")
