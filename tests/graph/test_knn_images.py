"""cross_scale_knn on real images (pixel and vgg-random embeddings) against the float64 brute force."""

import functools

import pytest
import torch

from ignn_lab.data.datasets import list_images, load_image
from ignn_lab.data.degrade import bicubic_lr, make_son, to_tensor01
from ignn_lab.graph import cross_scale_knn
from ignn_lab.graph.embed import embed
from tests.graph.support import BACKENDS, brute_force, tie_free

# (set, image, scale, LR crop (top, left, height, width)); crops keep the brute force to seconds
IMAGES = {
    "bird-x2": ("Set5", "bird", 2, (20, 30, 96, 101)),  # odd width
    "zebra-x3": ("Set14", "zebra", 3, (10, 20, 90, 94)),
    "urban-x2-flat": ("Urban100", "img_050", 2, (0, 0, 80, 120)),  # large flat areas: ties and fallbacks
}
# (image, embedding, window, centering)
CASES = [
    ("bird-x2", "pixel", 8, "corrected"),
    ("bird-x2", "vgg-random", 8, "corrected"),
    ("bird-x2", "vgg-random", 30, "corrected"),  # window covers the son grid (24×25): global
    ("zebra-x3", "pixel", 5, "corrected"),
    ("zebra-x3", "vgg-random", 5, "released"),
    ("zebra-x3", "vgg-random", None, "corrected"),
    ("urban-x2-flat", "pixel", 6, "corrected"),
    ("urban-x2-flat", "vgg-random", 6, "corrected"),
]


@functools.lru_cache(maxsize=None)
def _pair(data_root, key, embedding):
    set_name, image, scale, (top, left, h, w) = IMAGES[key]
    rec = next(r for r in list_images(set_name, data_root) if r.name == image)
    lr = to_tensor01(bicubic_lr(load_image(rec), scale))[..., top: top + h, left: left + w]
    if lr.shape[1] == 1:
        lr = lr.expand(-1, 3, -1, -1)
    son = make_son(lr, scale)
    return embed(lr, embedding), embed(son, embedding), scale


@functools.lru_cache(maxsize=None)
def _brute(data_root, key, embedding, window, centering, batch):
    query, son, g = _batched(data_root, key, embedding, batch)
    return brute_force(query, son, k=5, window=window, graph_scale=g, centering=centering)


def _batched(data_root, key, embedding, batch):
    query, son, g = _pair(data_root, key, embedding)
    if batch == 2:  # the second item: the same image flipped, so the batch items differ
        query, son = torch.cat([query, query.flip(-1)]), torch.cat([son, son.flip(-1)])
    return query, son, g


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-w{c[2]}-{c[3]}")
def test_real_images_match_float64_brute_force(data_root, case, backend):
    key, embedding, window, centering = case
    batch = 2 if key == "bird-x2" else 1
    query, son, g = _batched(data_root, key, embedding, batch)
    res = cross_scale_knn(query, son, k=5, window=window, graph_scale=g, centering=centering, backend=backend)
    bd, bi, ball = _brute(data_root, key, embedding, window, centering, batch)
    torch.testing.assert_close(res.distance.double(), bd, rtol=1e-5, atol=0)
    ok = tie_free(ball, 5)
    exact_tie = torch.zeros_like(ok)
    exact_tie[..., 1:] = ball[..., 1:5] == ball[..., :4]
    # where float64 distances are separated, indices agree; where they are exactly tied, lower index first
    assert torch.equal(res.index[ok], bi[ok])
    tied_rows = (ball[..., :5] == ball[..., 1:6]).any(-1)
    same_values = (res.distance.double() == bd).all(-1)
    assert torch.equal(res.index[tied_rows & same_values], bi[tied_rows & same_values])
    assert ok.float().mean() > 0.5
