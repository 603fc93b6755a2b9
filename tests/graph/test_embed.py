"""Matching embeddings: pixel, vgg-random, vgg19 (weights lookup and its error), features (spec §3)."""

import pytest
import torch
import torch.nn.functional as F

from ignn_lab.graph.embed import (
    IMAGENET_MEAN, IMAGENET_STD, VGG19_FILE, VGGHead, build_embedding, embed, vgg19_weights_path,
)
from tests.conftest import load_fixture


def test_pixel_is_mean_shifted_rgb():
    x = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    got = embed(x, "pixel")
    want = x - torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    assert got.dtype == torch.float64 and torch.equal(got, want)


def test_features_pass_through():
    x = torch.randn(1, 7, 4, 4)
    assert embed(x, "features") is x


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown embedding 'sift'"):
        build_embedding("sift")  # type: ignore[arg-type]


def test_meanshift_normalises():
    head = VGGHead()
    x = torch.rand(1, 3, 4, 4)
    want = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(head.sub_mean(x), want)


def test_vgg_random_is_the_released_init_and_frozen():
    head = build_embedding("vgg-random", seed=0)
    w1, w2 = head.model[0].weight, head.model[2].weight
    # kaiming-normal fan_in × 0.1: std 0.1·sqrt(2/27) and 0.1·sqrt(2/576) (spec: measured 0.0274 and 0.0059)
    assert abs(w1.std().item() / (0.1 * (2 / 27) ** 0.5) - 1) < 0.06
    assert abs(w2.std().item() / (0.1 * (2 / 576) ** 0.5) - 1) < 0.02
    assert not head.model[0].bias.any() and not head.model[2].bias.any()
    assert not any(p.requires_grad for p in head.parameters())
    again, other = build_embedding("vgg-random", seed=0), build_embedding("vgg-random", seed=1)
    assert torch.equal(again.model[2].weight, w2) and not torch.equal(other.model[2].weight, w2)


def test_vgg_random_embedding_shape_dtype():
    x = torch.rand(2, 3, 6, 5, dtype=torch.float64)
    y = embed(x, "vgg-random")
    assert y.shape == (2, 64, 6, 5) and y.dtype == torch.float64 and bool((y >= 0).all())  # after ReLU


def test_vgg19_missing_weights_error_names_both_places(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    local = tmp_path / "my_vgg19.pth"
    monkeypatch.setenv("IGNN_LAB_VGG19", str(local))
    with pytest.raises(FileNotFoundError) as err:
        vgg19_weights_path()
    msg = str(err.value)
    assert str(local) in msg and str(hub / "checkpoints" / VGG19_FILE) in msg
    monkeypatch.delenv("IGNN_LAB_VGG19")
    with pytest.raises(FileNotFoundError) as err:
        build_embedding("vgg19")
    msg = str(err.value)
    assert str(hub / "checkpoints") in msg and "IGNN_LAB_VGG19" in msg and "vgg-random" in msg


def test_vgg19_loads_torchvision_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    gen = torch.Generator().manual_seed(3)
    state = {"features.0.weight": torch.randn(64, 3, 3, 3, generator=gen),
             "features.0.bias": torch.randn(64, generator=gen),
             "features.2.weight": torch.randn(64, 64, 3, 3, generator=gen),
             "features.2.bias": torch.randn(64, generator=gen),
             "classifier.0.weight": torch.zeros(2, 2)}
    path = tmp_path / VGG19_FILE
    torch.save(state, path)
    head = build_embedding("vgg19", weights=path)
    assert torch.equal(head.model[0].weight, state["features.0.weight"])
    assert torch.equal(head.model[2].bias, state["features.2.bias"])
    with pytest.raises(KeyError, match="features.2.weight"):
        VGGHead().load_torchvision_vgg19_({"features.0.weight": state["features.0.weight"]})


@pytest.mark.parametrize("name", ["x2", "x3"])
def test_vgghead_loads_fixture_embedcnn(ref_root, name):
    fx = load_fixture(ref_root, name)
    prefix = "module.graph.embedcnn."
    sd = {k[len(prefix):]: v for k, v in fx["checkpoint"]["net_state_dict"].items() if k.startswith(prefix)}
    assert set(sd) == {f"{m}.{p}" for m in ("sub_mean", "model.0", "model.2") for p in ("weight", "bias")}
    head = VGGHead().double()
    head.load_state_dict({k: v.double() for k, v in sd.items()}, strict=True)
    x = fx["lr"] / 255
    want = F.conv2d(x, sd["sub_mean.weight"].double(), sd["sub_mean.bias"].double())
    want = F.relu(F.conv2d(want, sd["model.0.weight"].double(), sd["model.0.bias"].double(), padding=1))
    want = F.relu(F.conv2d(want, sd["model.2.weight"].double(), sd["model.2.bias"].double(), padding=1))
    torch.testing.assert_close(embed(x, "vgg-random", net=head), want, rtol=0, atol=1e-12)


def test_embed_input_errors_and_net_left_unchanged():
    with pytest.raises(TypeError, match="floating"):
        embed(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "pixel")
    with pytest.raises(ValueError, match="B×3×H×W"):
        embed(torch.rand(1, 4, 5, 5), "vgg-random")
    head = build_embedding("vgg-random")
    y = embed(torch.rand(1, 3, 5, 5, dtype=torch.float64), "vgg-random", net=head)
    assert y.dtype == torch.float64 and head.model[0].weight.dtype == torch.float32
