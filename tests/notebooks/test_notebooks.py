"""Every notebook runs headless under papermill on tiny parameters and records its results; the committed
notebooks are the generator's current output."""

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

from ignn_lab.lab.notebooks import notebooks_dir
from ignn_lab.lab.results import check_results

NOTEBOOKS = sorted(notebooks_dir().glob("*.ipynb"))
GENERATOR = Path(__file__).resolve().parents[2] / "tools" / "make_notebooks.py"
#: A run of seconds: a one-block EDSR-lite on T91 patches.
TINY = {"model": "edsr-lite", "model_overrides": {"n_resblocks": 1}, "train_sets": ["T91"], "val_count": 1,
        "patch_size": 16, "batch": 2, "warmup_steps": 1, "val_every": 3, "log_every": 1, "save_every": 3}


def _generator():
    spec = importlib.util.spec_from_file_location("make_notebooks", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_clean_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code"), \
        "committed without outputs"


def test_committed_notebooks_are_the_generators_output(tmp_path):
    """`python tools/make_notebooks.py` regenerates notebooks/; the committed files must be its output."""
    gen = _generator()
    written = gen.write_all(tmp_path)
    assert sorted(p.name for p in written) == [p.name for p in NOTEBOOKS]
    for path in written:
        assert path.read_bytes() == (notebooks_dir() / path.name).read_bytes(), \
            f"{path.name} differs from tools/make_notebooks.py's output: run python tools/make_notebooks.py"


def _outputs(path):
    nb = nbformat.read(path, as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


@pytest.mark.notebooks
def test_train_notebook_matches_library(data_root, tmp_path):
    from ignn_lab.lab.notebooks import run_notebook
    from ignn_lab.lab.training import train_and_evaluate

    params = {"config": "smoke", "overrides": TINY, "steps": 3, "sets": ["Set5"], "limit": 1, "self_ensemble": True,
              "live": True, "progress": False, "out": str(tmp_path / "nb")}
    run_notebook("02_train", params, tmp_path / "nb", progress=False)
    by_nb = check_results(json.loads((tmp_path / "nb" / "results.json").read_text()))
    direct = train_and_evaluate("smoke", tmp_path / "direct", overrides=TINY, steps=3, sets=["Set5"], limit=1,
                                self_ensemble=True, progress=False)
    assert by_nb["train"]["best_psnr"] == direct["train"]["best_psnr"]
    assert [(c["model"], c["psnr"]) for c in by_nb["summary"]] == [(c["model"], c["psnr"]) for c in direct["summary"]]
    assert [c["model"] for c in by_nb["summary"]] == ["edsr-lite", "edsr-lite+"]
    # live: the curves were drawn into the training cell's one display, updated in place (no static copy)
    nb = nbformat.read(tmp_path / "nb" / "02_train.ipynb", as_version=4)
    training = next(c for c in nb.cells if "train_and_evaluate(" in c.source)
    assert [o for o in training.outputs if o.output_type == "display_data"][0].data.keys() >= {"image/png"}
    assert sum("image/png" in o.get("data", {}) for o in _outputs(tmp_path / "nb" / "02_train.ipynb")) == 1
    for name in ("best.pt", "last.pt", "curves.png", "log.jsonl", "config.json"):
        assert (tmp_path / "nb" / name).is_file()


@pytest.mark.notebooks
def test_train_notebook_stops_resumes_and_shows_static_curves(data_root, tmp_path):
    from ignn_lab.lab.notebooks import run_notebook

    params = {"config": "smoke", "overrides": TINY, "steps": 3, "max_minutes": 0, "live": False,
              "progress": False, "limit": 1, "out": str(tmp_path)}
    run_notebook("02_train", params, tmp_path, progress=False)
    res = check_results(json.loads((tmp_path / "results.json").read_text()))
    assert res["train"]["status"] == "time-limit" and res["summary"] == []
    texts = " ".join(o.get("data", {}).get("text/markdown", "") for o in _outputs(tmp_path / "02_train.ipynb"))
    assert "run again with `resume = True`" in texts
    run_notebook("02_train", {**params, "max_minutes": None, "resume": True}, tmp_path, progress=False)
    res = check_results(json.loads((tmp_path / "results.json").read_text()))
    assert res["train"]["status"] == "finished" and res["train"]["step"] == 3 and res["summary"]
    images = [o for o in _outputs(tmp_path / "02_train.ipynb") if "image/png" in o.get("data", {})]
    assert len(images) == 1  # curves.png, shown once training ended


@pytest.mark.notebooks
def test_evaluate_notebook_matches_library(data_root, tmp_path):
    from ignn_lab.engine.evaluate import evaluate
    from ignn_lab.lab.notebooks import run_notebook

    params = {"model": "bicubic", "sets": ["Set5"], "scales": [2, 3], "progress": False, "out": str(tmp_path)}
    run_notebook("03_evaluate", params, tmp_path, progress=False)
    res = check_results(json.loads((tmp_path / "results.json").read_text()))
    direct = evaluate("bicubic", ["Set5"], (2, 3), progress=False)
    assert [r["psnr"] for r in res["rows"]] == [r["psnr"] for r in direct["rows"]]
    assert (tmp_path / "03_evaluate.ipynb").is_file() and (tmp_path / "psnr.png").is_file()
    assert _outputs(tmp_path / "03_evaluate.ipynb")


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
    from ignn_lab.lab.ablate_learned import learned_ablation
    from ignn_lab.lab.notebooks import run_notebook

    variants = {"tiny": {"config": "smoke", "overrides": TINY}}
    params = {"variants": variants, "budget": {"steps": 2}, "graphagg_variants": ["default", "k1"],
              "sets": ["Set5"], "scales": [2], "limit": 1, "progress": False, "out": str(tmp_path / "nb")}
    run_notebook("04_ablate", params, tmp_path / "nb", progress=False)
    res = check_results(json.loads((tmp_path / "nb" / "results.json").read_text()))
    learned = learned_ablation(variants, out=tmp_path / "learned", budget={"steps": 2}, limit=1, progress=False)
    graphagg = graphagg_ablation(["default", "k1"], ["Set5"], [2], out=tmp_path / "graphagg", limit=1,
                                 progress=False)
    cells = {(c["model"], c["variant"]): c["psnr"] for c in res["summary"]}
    assert cells == {("edsr-lite", "tiny"): learned["rows"][0]["psnr"],
                     **{("bicubic" if r["variant"] == "bicubic" else "graphagg-star", r["variant"]): r["psnr"]
                        for r in graphagg["rows"]}}
    assert res["learned"]["rows"][0]["steps"] == 2
    for section in ("learned", "graphagg"):
        assert (tmp_path / "nb" / section / "ablation.png").is_file()
    assert sum("image/png" in o.get("data", {}) for o in _outputs(tmp_path / "nb" / "04_ablate.ipynb")) == 2
