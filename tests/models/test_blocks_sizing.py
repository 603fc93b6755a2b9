"""pixel_shuffle_cat against the two-step form; the sizing sweep's parser and one tiny sweep row."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ignn_lab.models import build
from ignn_lab.models.blocks import cat_channels_last, pixel_shuffle_cat
from ignn_lab.lab.sizing import parse_bodies, sweep


@pytest.mark.parametrize("r", [2, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_pixel_shuffle_cat_equals_shuffle_then_cat(r, channels_last):
    gen = torch.Generator().manual_seed(r)
    y = torch.randn(2, 5 * r * r, 7, 6, generator=gen)
    if channels_last:
        y = y.contiguous(memory_format=torch.channels_last)
    extra = torch.randn(2, 3, 7 * r, 6 * r, generator=gen)
    out = pixel_shuffle_cat(y, extra, r)
    assert torch.equal(out, cat_channels_last([F.pixel_shuffle(y, r), extra]))
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_ignn_forward_same_with_and_without_autograd():
    """The fused shuffle (no autograd) and the two-step path (autograd) give the same SR image."""
    torch.manual_seed(0)
    model = build("ignn-lite", 2, n_resblocks=2).eval()
    lr = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        fused = model(lr)
    plain = model(lr)  # grad enabled and the weights require grad: the two-step path
    torch.testing.assert_close(fused, plain.detach(), rtol=0, atol=1e-6)


def test_parse_bodies():
    assert parse_bodies("32x16, 44X16,") == [(32, 16), (44, 16)]
    assert parse_bodies("") == []
    for bad in ("32", "ax16", "1x16", "32x0"):
        with pytest.raises(ValueError, match="body"):
            parse_bodies(bad)


def test_sweep_row_has_both_models():
    (row,) = sweep([(2, 8)], train_reps=1, inference_reps=1)
    assert (row["blocks"], row["width"]) == (2, 8)
    for key in ("train_step_s_edsr-lite", "train_step_s_ignn-lite", "inference_256_s_edsr-lite",
                "inference_256_s_ignn-lite"):
        assert row[key] > 0
    assert row["inference_ratio"] == row["inference_256_s_ignn-lite"] / row["inference_256_s_edsr-lite"]
