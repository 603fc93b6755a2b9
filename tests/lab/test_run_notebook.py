"""``run-notebook``: parameters checked against the notebook before a kernel starts; results go to --out."""

import json

import pytest

from ignn_lab.cli import main
from ignn_lab.lab.notebooks import check_parameters, notebook_parameters
from tests.support import clean_error, snapshot


def test_parameters_are_checked_against_the_notebook(tmp_path):
    """Fault 5: a mistyped name is an error that lists the notebook's parameters, not a warning."""
    assert {"model", "sets", "scales", "out", "limit"} <= set(notebook_parameters("03_evaluate"))
    with pytest.raises(ValueError, match="notebook 03_evaluate has no parameter 'modle'; its parameters: model, "
                                         "sets, scales"):
        check_parameters("03_evaluate", {"modle": "bicubic"}, tmp_path)
    with pytest.raises(ValueError, match=r"parameter scales=2 is not a list, the type of its default \[2, 3, 4\]"):
        check_parameters("03_evaluate", {"scales": 2}, tmp_path)
    with pytest.raises(ValueError, match="parameter save_images=1 is not a bool"):
        check_parameters("03_evaluate", {"save_images": 1}, tmp_path)
    with pytest.raises(ValueError, match="differs from the output folder"):
        check_parameters("03_evaluate", {"out": str(tmp_path / "elsewhere")}, tmp_path / "o")
    params = check_parameters("03_evaluate", {"limit": None}, tmp_path)
    assert params == {"limit": None, "out": str(tmp_path.resolve())}  # the results follow --out


def test_a_mistyped_parameter_fails_before_any_kernel(tmp_path, capsys):
    rc = main(["run-notebook", "03_evaluate", "-p", "modle=bicubic", "--out", str(tmp_path / "o")])
    clean_error(rc, capsys.readouterr().err, "no parameter 'modle'")
    assert not (tmp_path / "o").exists()


@pytest.mark.notebooks
def test_results_go_to_out_and_a_failed_run_keeps_the_old_ones(tmp_path, monkeypatch, capsys):
    """Fault 5: the executed notebook and its results land in --out (never in the notebook's default folder);
    a notebook that fails leaves the previous run's files and keeps the failed notebook beside them."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "mine"
    argv = ["run-notebook", "03_evaluate", "-p", 'sets=["skimage"]', "-p", "scales=[2]", "-p", "limit=1",
            "--out", str(out), "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert res["summary"][0]["set"] == "skimage" and res["summary"][0]["n_images"] == 1
    assert (out / "03_evaluate.ipynb").is_file() and not (tmp_path / "runs").exists()
    before = snapshot(out)
    rc = main([*argv[:-3], "-p", "model=no-such-model", "--out", str(out), "--quiet"])
    clean_error(rc, capsys.readouterr().err, "notebook 03_evaluate failed in cell", "no-such-model",
                "03_evaluate.failed.ipynb")
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k != "03_evaluate.failed.ipynb"} == before
    assert main(argv) == 0 and not (out / "03_evaluate.failed.ipynb").exists()  # a success clears the failure
