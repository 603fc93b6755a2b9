"""Every notebook runs headless under papermill on tiny parameters and records its results."""

import json
from pathlib import Path

import nbformat
import pytest

from ignn_lab.lab.notebooks import notebooks_dir

NOTEBOOKS = sorted(notebooks_dir().glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_clean_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "committed without outputs"


@pytest.mark.notebooks
def test_evaluate_notebook_matches_library(data_root, tmp_path):
    from ignn_lab.engine.evaluate import evaluate
    from ignn_lab.lab.tasks import reproduce

    res = reproduce("bicubic", out=tmp_path, sets=["Set5"], scales=[2, 3], progress=False)
    direct = evaluate("bicubic", ["Set5"], (2, 3), progress=False)
    assert [r["psnr"] for r in res["rows"]] == [r["psnr"] for r in direct["rows"]]
    assert (tmp_path / "03_evaluate.ipynb").is_file() and (tmp_path / "psnr.png").is_file()
    executed = nbformat.read(tmp_path / "03_evaluate.ipynb", as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")


@pytest.mark.notebooks
def test_explore_notebook_matches_library(tmp_path):
    """Under papermill (no front end) 01_explore writes the static figure and JSON of ``query``: the same
    record as ``explore`` called directly; the widget cell runs too (its output is a widget view)."""
    from ignn_lab.lab.explore import explore
    from ignn_lab.lab.notebooks import run_notebook

    params = {"image": "skimage/astronaut", "scale": 4, "query": [41, 60], "k": 4, "window": 12,
              "out": str(tmp_path)}
    run_notebook("01_explore", params, tmp_path, progress=False)
    record = json.loads((tmp_path / "skimage_astronaut_x4.json").read_text())
    direct = explore("skimage/astronaut", scale=4, query=(41, 60), k=4, window=12,
                     out=tmp_path / "direct.png")
    paths = {"figure", "json"}
    assert {k: v for k, v in record.items() if k not in paths} == \
        json.loads(json.dumps({k: v for k, v in direct.items() if k not in paths}))
    assert record["query"]["lr_box"] == [40, 60, 3, 3] and len(record["neighbours"]) == 4
    assert (tmp_path / "skimage_astronaut_x4.png").stat().st_size > 0
    executed = nbformat.read(tmp_path / "01_explore.ipynb", as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


@pytest.mark.notebooks
def test_ablate_notebook_matches_library(data_root, tmp_path):
    from ignn_lab.lab.ablate import graphagg_ablation
    from ignn_lab.lab.notebooks import run_notebook

    params = {"variants": ["default", "k1"], "sets": ["Set5"], "scales": [2], "limit": 1, "out": str(tmp_path)}
    run_notebook("04_ablate", params, tmp_path, progress=False)
    by_nb = json.loads((tmp_path / "ablation.json").read_text())["rows"]
    direct = graphagg_ablation(["default", "k1"], ["Set5"], [2], out=tmp_path / "direct", limit=1, progress=False)
    assert [r["psnr"] for r in by_nb] == [r["psnr"] for r in direct["rows"]]
    assert (tmp_path / "ablation.png").is_file()
