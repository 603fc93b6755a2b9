import json

import pytest

from ignn_lab.cli import build_parser, main


def test_evaluate_command_writes_results(data_root, tmp_path, capsys):
    rc = main(["evaluate", "--sets", "Set5", "--scales", "2,4", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert {(c["set"], c["scale"]) for c in res["summary"]} == {("Set5", 2), ("Set5", 4)}
    assert (tmp_path / "psnr.png").is_file()
    assert "| bicubic | Set5 | ×2 |" in capsys.readouterr().out


def test_data_check_command(data_root, capsys):
    assert main(["data", "check", "--sets", "Set5", "--quiet"]) == 0
    assert "5 ok, 0 missing, 0 altered" in capsys.readouterr().out


def test_clear_errors(tmp_path, capsys):
    assert main(["evaluate", "--sets", "NoSuchSet", "--out", str(tmp_path), "--quiet"]) == 2
    assert "unknown set 'NoSuchSet'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["explore", "img.png", "--query", "1,2,3"])


def test_parser_knows_every_verb():
    p = build_parser()
    for argv in (["demo"], ["explore", "skimage/astronaut"], ["bench", "knn", "--json", "x.json"],
                 ["bench", "models", "--json", "x.json"], ["upscale", "a.png", "--model", "m", "--scale", "2",
                                                           "--out", "o"], ["reproduce", "bicubic"], ["models"],
                 ["run-notebook", "03_evaluate", "--out", "o"], ["data", "list"]):
        assert p.parse_args(argv).func
