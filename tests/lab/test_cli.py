import json

import pytest

from ignn_lab.cli import build_parser, main
from tests.support import clean_error, copy_set, disk_full, snapshot, unwritable_folder, write_png


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


# ---------------------------------------------------------------- issue 16: every fault a clean error, nothing lost

def _run(argv, capsys):
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.parametrize("argv,names", [
    (["evaluate", "--limit", "-1"], "'-1'"), (["evaluate", "--limit", "0"], "'0'"),
    (["evaluate", "--scales", "2,2"], "scale 2 is listed twice"), (["evaluate", "--scales", "1"], "scale 1"),
    (["evaluate", "--sets", "Set5,Set5"], "set 'Set5' is listed twice"), (["evaluate", "--window", "-3"], "'-3'"),
    (["evaluate", "--k", "0"], "--k"), (["evaluate", "--tile", "x"], "--tile"),
    (["ablate", "graphagg", "--scales", "3,3"], "scale 3 is listed twice"),
    (["explore", "skimage/astronaut", "--scale", "1"], "an integer scale ≥ 2"),
    (["explore", "skimage/astronaut", "--query=-1,2"], "ROW,COL"),
    (["upscale", "a.png", "--model", "m", "--scale", "2,3"], "an integer scale ≥ 2"),
    (["run-notebook", "03_evaluate", "-p", "novalue"], "parameter 'novalue': expected key=value")])
def test_bad_values_are_one_line_before_any_work(argv, names, tmp_path, capsys):
    """Fault 4 (and its kind): every option is checked before anything is read or written."""
    if "--out" not in argv and argv[0] in ("evaluate", "ablate", "upscale", "run-notebook"):
        argv = [*argv, "--out", tmp_path / "o"]
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse: the option's own type check
        rc = exc.code
    clean_error(rc, capsys.readouterr().err, names)
    assert not (tmp_path / "o").exists()


def test_window_none_and_zero_are_recorded_as_a_global_search(tmp_path, capsys):
    """Fault 1: ``--window none`` / ``0`` is a global search (null), other values are ints."""
    write_png(tmp_path / "set" / "a.png", 96, 96)
    got = {}
    for text in ("none", "0", "3"):
        out = tmp_path / f"o{text}"
        rc, _, err = _run(["evaluate", "--model", "graphagg-star", "--window", text, "--sets", tmp_path / "set",
                           "--scales", "2", "--out", out, "--quiet"], capsys)
        assert rc == 0, err
        res = json.loads((out / "results.json").read_text())
        got[text] = (res["provenance"]["model_options"]["window"], res["rows"][0]["psnr"])
    assert got["none"] == got["0"] and got["none"][0] is None and got["3"][0] == 3 and got["3"][1] != got["none"][1]


def test_an_extra_image_is_reported_and_refused(data_root, tmp_path, capsys):
    """Fault 3: data check lists the extra image (exit 1); evaluate refuses the set in one line (exit 2)."""
    import shutil

    root = copy_set(data_root, tmp_path / "root")
    shutil.copy(data_root / "Set14" / "zebra.png", root / "Set5")
    rc, out, _ = _run(["data", "check", "--data-root", root, "--quiet"], capsys)
    assert rc == 1 and "5 ok, 0 missing, 0 altered, 1 extra" in out and "extra (an image MANIFEST.tsv does not " \
        "list): Set5/zebra.png" in out
    rc, _, err = _run(["evaluate", "--sets", "Set5", "--scales", "2", "--data-root", root, "--out",
                       tmp_path / "o", "--quiet"], capsys)
    clean_error(rc, err, "1 extra (Set5/zebra.png)", "MANIFEST.tsv")
    assert not (tmp_path / "o").exists()


def test_output_faults_are_one_line_and_lose_nothing(tmp_path, monkeypatch, capsys):
    """Fault 7: an --out that is a file, an unwritable folder, a full disk."""
    write_png(tmp_path / "set" / "a.png", 24, 24)
    args = ["evaluate", "--sets", tmp_path / "set", "--scales", "2", "--quiet", "--out"]
    (tmp_path / "file").write_text("keep")
    clean_error(*_run([*args, tmp_path / "file"], capsys)[::2], f"{tmp_path / 'file'} is a file")
    assert (tmp_path / "file").read_text() == "keep"
    ro = unwritable_folder(tmp_path)
    clean_error(*_run([*args, ro], capsys)[::2], str(ro))
    out = tmp_path / "o"
    assert _run([*args, out], capsys)[0] == 0
    before = snapshot(out)
    disk_full(monkeypatch, "psnr.png")
    clean_error(*_run([*args, out, "--save-images"], capsys)[::2], f"{out / 'psnr.png'}: No space left on device")
    assert snapshot(out) == before


def test_graphagg_star_refuses_network_options(tmp_path, capsys):
    """Fault 9: one line that names the option and what graphagg-star takes; nothing written."""
    for opt in (["--tile", "64"], ["--dtype", "float64"], ["--self-ensemble"]):
        rc, _, err = _run(["evaluate", "--model", "graphagg-star", *opt, "--sets", "skimage", "--out",
                           tmp_path / "o", "--quiet"], capsys)
        clean_error(rc, err, "does not apply to graphagg-star", "graphagg-star takes device, k, window")
    assert not (tmp_path / "o").exists()


def test_bad_images_are_one_line(tmp_path, capsys):
    """Faults 10 and 11: huge headers, 48-bit RGB, images too small for the scale."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    for side in (10000, 20000):
        bomb = tmp_path / f"bomb{side}.png"
        bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                         + chunk(b"IDAT", zlib.compress(b"\0" * 4)) + chunk(b"IEND", b""))
        clean_error(*_run(["explore", bomb, "--out", tmp_path / "f.png"], capsys)[::2], str(bomb), "67 MP")
    rgb48 = tmp_path / "rgb48.png"
    rgb48.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 16, 2, 0, 0, 0))
                      + chunk(b"IDAT", zlib.compress(b"\0" + b"\1" * 12 + b"\0" + b"\2" * 12)) + chunk(b"IEND", b""))
    clean_error(*_run(["upscale", rgb48, "--model", "bicubic", "--scale", "2", "--out", tmp_path / "u"],
                      capsys)[::2], str(rgb48), "16 bits per channel", "expected 8-bit RGB")
    tiny = write_png(tmp_path / "tiny" / "t.png", 3, 3)
    clean_error(*_run(["evaluate", "--sets", tmp_path / "tiny", "--scales", "4", "--out", tmp_path / "e", "--quiet"],
                      capsys)[::2], str(tiny), "3×3 pixels is too small for bicubic at ×4", "at least 4×4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb10000.png", "bomb20000.png", "rgb48.png", "tiny"]


def test_bad_checkpoints_are_one_line(tmp_path, capsys):
    """Fault 11: the file is named and what is accepted is said; torch's own text never shows."""
    write_png(tmp_path / "in" / "a.png", 16, 16)
    (tmp_path / "zero.pt").write_bytes(b"")
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 4)
    for name in ("zero.pt", "random.pt"):
        rc, _, err = _run(["upscale", tmp_path / "in", "--model", tmp_path / name, "--scale", "2", "--out",
                           tmp_path / "o"], capsys)
        line = clean_error(rc, err, str(tmp_path / name), "expected a checkpoint written by ignn_lab.models.save")
        assert "weights_only" not in line and "Unsupported" not in line
    assert not (tmp_path / "o").exists()


def test_warnings_are_one_line(tmp_path, capsys):
    write_png(tmp_path / "in" / "a.png", 16, 16)
    rc, _, err = _run(["upscale", tmp_path / "in", "--model", "edsr-lite", "--scale", "2", "--out", tmp_path / "o",
                       "--quiet"], capsys)
    assert rc == 0 and err.splitlines() == [
        "ignn-lab upscale: warning: edsr-lite: built from the registry with random weights (untrained); pass a "
        "checkpoint for meaningful outputs"]


def test_ctrl_c_leaves_the_previous_outputs(tmp_path, monkeypatch, capsys):
    """An interrupted evaluation: one line, exit 130, and the previous run's files as they were."""
    import ignn_lab.engine.evaluate as ev

    write_png(tmp_path / "set" / "a.png", 24, 24)
    args = ["evaluate", "--sets", tmp_path / "set", "--scales", "2", "--quiet", "--out", tmp_path / "o"]
    assert _run(args, capsys)[0] == 0
    before = snapshot(tmp_path / "o")

    def interrupt(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(ev, "_eval_image", interrupt)
    rc, _, err = _run([*args, "--save-images"], capsys)
    assert rc == 130 and err.splitlines() == ["ignn-lab evaluate: interrupted"]
    assert snapshot(tmp_path / "o") == before
