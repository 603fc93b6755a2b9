import math

import numpy as np
import pytest
import torch

from ignn_lab.data.imresize import contributions, cubic, imresize, imresize_np, output_size
from ignn_lab.data.io import read_image


def _loop_resize(x: np.ndarray, scale: float) -> np.ndarray:
    """Independent float64 loop implementation of the protocol's 1-D passes (uint8 in/out per pass)."""
    def one_dim(a, s, axis):
        a = np.moveaxis(a, axis, 0).astype(np.float64)
        n = a.shape[0]
        m = math.ceil(n * s - 1e-9)
        width = 4 / s if s < 1 else 4
        out = np.zeros((m,) + a.shape[1:])
        for x in range(1, m + 1):
            u = x / s + 0.5 * (1 - 1 / s)
            left = math.floor(u - width / 2)
            js = range(left, left + math.ceil(width) + 2)
            ws = [(s * cubic(np.array(s * (u - j))) if s < 1 else cubic(np.array(u - j))) for j in js]
            tot = sum(ws)
            acc = 0.0
            for j, w in zip(js, ws):
                acc += (w / tot) * a[min(max(j, 1), n) - 1]
            out[x - 1] = np.clip(np.floor(acc + 0.5), 0, 255)
        return np.moveaxis(out, 0, axis)
    return one_dim(one_dim(x, scale, 0), scale, 1).astype(np.uint8)


def test_cubic_kernel_values():
    assert cubic(np.array([0.0, 1.0, 2.0, 3.0])).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert cubic(np.array([0.5]))[0] == pytest.approx(0.5625)
    assert cubic(np.array([1.5]))[0] == pytest.approx(-0.0625)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_identity_at_scale_one(dtype):
    x = (torch.rand(2, 3, 17, 23) * 255).to(dtype)
    assert torch.equal(imresize(x, 1.0), x)


def test_contribution_weights_sum_to_one_and_clamp():
    for n_in, n_out, s in [(10, 5, 0.5), (12, 4, 1 / 3), (5, 20, 4.0), (7, 14, 2.0)]:
        w, ind = contributions(n_in, n_out, s)
        np.testing.assert_allclose(w.sum(1), 1.0, rtol=0, atol=1e-12)
        assert ind.min() >= 0 and ind.max() <= n_in - 1


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.25, 2.0, 3.0, 4.0])
def test_matches_loop_reference_on_random_uint8(scale):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(13, 11), dtype=np.uint8)
    np.testing.assert_array_equal(imresize_np(x, scale), _loop_resize(x, scale))


def test_known_small_array_upscale():
    # A constant image stays constant; a step is smoothed with the cubic's overshoot clipped.
    x = torch.full((1, 4, 4), 100, dtype=torch.uint8)
    assert torch.equal(imresize(x, 2.0), torch.full((1, 8, 8), 100, dtype=torch.uint8))
    step = torch.tensor([[0, 0, 255, 255]], dtype=torch.float64)
    up = imresize(step, size=(1, 8))
    assert up[0, 0].item() == 0 and up[0, -1].item() == 255
    assert (up[0, 3] > 0) and (up[0, 3] < 127.5) and up[0, 2] < 0  # undershoot of the a = -0.5 kernel


def test_shape_rules():
    x = torch.zeros(3, 7, 10, dtype=torch.uint8)
    assert imresize(x, 0.5).shape == (3, 4, 5)  # ceil
    assert imresize(x, 3.0).shape == (3, 21, 30)
    assert imresize(x, size=(5, 9)).shape == (3, 5, 9)
    assert output_size((12, 9), 1 / 3) == (4, 3)
    with pytest.raises(ValueError):
        imresize(x, 0.5, size=(2, 2))
    with pytest.raises(ValueError):
        imresize(torch.zeros(5), 0.5)
    with pytest.raises(TypeError):
        imresize(torch.zeros(4, 4, dtype=torch.int32), 0.5)


def test_batch_equals_loop():
    x = (torch.rand(4, 3, 24, 18) * 255).round().to(torch.uint8)
    batch = imresize(x, 1 / 3)
    loop = torch.stack([imresize(x[i], 1 / 3) for i in range(4)])
    assert torch.equal(batch, loop)


def test_float32_close_to_float64():
    x = torch.rand(2, 3, 30, 40, dtype=torch.float64)
    a = imresize(x, 0.5)
    b = imresize(x.float(), 0.5)
    assert b.dtype == torch.float32
    assert (a - b.double()).abs().max() < 1e-6


def test_real_image_against_loop(data_root):
    img = read_image(data_root / "Set5" / "butterfly.png")[:40, :52]
    for c in range(3):
        np.testing.assert_array_equal(imresize_np(img, 0.25)[..., c], _loop_resize(img[..., c], 0.25))


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 2.0])
def test_symmetric_border_matches_padded_loop(scale):
    """border='symmetric' reads a numpy-'symmetric'-padded signal at MATLAB's unclamped indices."""
    from ignn_lab.data.imresize import _raw_contributions

    n, pad = 17, 16
    x = np.random.default_rng(5).random(n)
    xp = np.pad(x, pad, mode="symmetric")
    m = math.ceil(n * scale - 1e-9)
    w, raw = _raw_contributions(n, m, scale, True)
    expected = (w * xp[raw - 1 + pad]).sum(1)
    got = imresize(torch.from_numpy(x).view(1, n, 1), (scale, 1.0), border="symmetric")
    np.testing.assert_allclose(got.view(-1).numpy(), expected, rtol=0, atol=1e-12)
    clamped = imresize(torch.from_numpy(x).view(1, n, 1), (scale, 1.0))
    assert not np.allclose(clamped.view(-1).numpy(), expected)  # the two borders really differ
