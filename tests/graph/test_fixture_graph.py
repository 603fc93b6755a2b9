"""idx_k of the parity fixtures, from the fixture's lr/son through the fixture's own VGG head weights."""

import pytest
import torch
import torch.nn.functional as F

from ignn_lab.graph import cross_scale_knn, window_table
from tests.conftest import load_fixture


def _embed(sd, x):
    x = F.conv2d(x / 255, sd["graph.embedcnn.sub_mean.weight"], sd["graph.embedcnn.sub_mean.bias"])
    x = F.relu(F.conv2d(x, sd["graph.embedcnn.model.0.weight"], sd["graph.embedcnn.model.0.bias"], padding=1))
    return F.relu(F.conv2d(x, sd["graph.embedcnn.model.2.weight"], sd["graph.embedcnn.model.2.bias"], padding=1))


@pytest.mark.parametrize("name", ["x2", "x3", "x4", "x3_windowed"])
def test_fixture_idx_k_released_centering(ref_root, name):
    fx = load_fixture(ref_root, name)
    sd = {k.removeprefix("module."): v.double() for k, v in fx["checkpoint"]["net_state_dict"].items()}
    g = cross_scale_knn(_embed(sd, fx["lr"]), _embed(sd, fx["son"]), k=fx["k"], window=fx["window_size"],
                        graph_scale=fx["graph_scale"], centering="released")
    assert torch.equal(g.index, fx["idx_k"])
    offset = 1e-5 if g.window is not None else 0.0
    torch.testing.assert_close(g.distance + offset, fx["dist_k"], rtol=1e-9, atol=1e-9)
    if fx["window_index"] is not None:
        table = window_table(g.query_grid, g.son_grid, g.window, fx["graph_scale"], "released", order="column")
        assert torch.equal(table, fx["window_index"][0])
