import hashlib
import shutil

import numpy as np
import pytest

from ignn_lab.data.datasets import (BENCHMARK_SETS, check_data_root, default_data_root, list_images, load_image,
                                    read_manifest, resolve_data_root)
from ignn_lab.data.degrade import LRCache, bicubic_lr, make_son, modcrop


def test_benchmark_sets_match_manifest(data_root):
    rows = read_manifest(data_root)
    for name in BENCHMARK_SETS:
        recs = list_images(name, data_root)
        expected = sorted(r["path"].split("/", 1)[1].rsplit(".", 1)[0] for r in rows if r["set"] == name)
        assert [r.name for r in recs] == expected
    assert len(list_images("Set5", data_root)) == 5 and len(list_images("Urban100", data_root)) == 100


def test_aliases_and_grey_image(data_root):
    assert [r.name for r in list_images("bsd100", data_root)] == [r.name for r in list_images("B100", data_root)]
    bridge = [r for r in list_images("Set14", data_root) if r.name == "bridge"][0]
    assert load_image(bridge).ndim == 2


def test_embedded_skimage_set_needs_no_data_root():
    recs = list_images("skimage")
    assert len(recs) >= 8
    img = load_image(recs[0])
    assert img.dtype == np.uint8 and img.shape[0] >= 256


def test_any_folder_and_unknown_names(tmp_path):
    from ignn_lab.data.io import write_image

    write_image(tmp_path / "b.png", np.zeros((8, 8, 3), np.uint8))
    write_image(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    assert [r.name for r in list_images(tmp_path)] == ["a", "b"]
    with pytest.raises(ValueError, match="unknown set 'Nope'"):
        list_images("Nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        list_images(empty)


def test_data_root_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("IGNN_LAB_DATA", str(tmp_path))
    assert default_data_root() == tmp_path
    assert resolve_data_root(tmp_path) == tmp_path
    with pytest.raises(FileNotFoundError, match="IGNN_LAB_DATA"):
        resolve_data_root(tmp_path / "missing")


def test_check_reports_missing_and_altered(data_root, tmp_path):
    rows = [r for r in read_manifest(data_root) if r["set"] == "Set5"]
    (tmp_path / "Set5").mkdir()
    for r in rows[:3]:
        shutil.copy(data_root / r["path"], tmp_path / r["path"])
    with open(tmp_path / rows[0]["path"], "ab") as f:
        f.write(b"\0")  # altered
    header = "set\tpath\tsha256\tbytes\twidth\theight\tchannels\n"
    lines = ["\t".join(r[k] for k in ("set", "path", "sha256", "bytes", "width", "height", "channels")) for r in rows]
    (tmp_path / "MANIFEST.tsv").write_text(header + "\n".join(lines) + "\n")
    rep = check_data_root(tmp_path)
    assert rep.checked == 5 and rep.ok == 2 and not rep.passed
    assert rep.altered == [rows[0]["path"]]
    assert sorted(rep.missing) == sorted(r["path"] for r in rows[3:])


def test_real_data_root_passes_check_for_set5(data_root):
    assert check_data_root(data_root, ["Set5"]).passed


def test_modcrop_and_lr_cache(data_root, tmp_path):
    rec = list_images("Set5", data_root)[1]
    hr = load_image(rec)
    assert modcrop(hr[:101, :99], 4).shape[:2] == (100, 96)
    cache = LRCache(tmp_path)
    lr = cache.get(rec.path, 3)
    np.testing.assert_array_equal(lr, bicubic_lr(hr, 3))
    path = cache.path_for(rec.path, 3)
    assert path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest()
    np.testing.assert_array_equal(cache.get(rec.path, 3), lr)  # served from disk
    path.write_bytes(b"broken")
    np.testing.assert_array_equal(cache.get(rec.path, 3), lr)  # corrupt entry recomputed


def test_make_son_shape_and_range():
    import torch

    lr = torch.rand(2, 3, 45, 62, dtype=torch.float64)
    son = make_son(lr, 2)
    assert son.shape == (2, 3, 22, 31) and son.min() >= 0 and son.max() <= 1
    assert make_son(lr, 3).shape == (2, 3, 15, 20)


@pytest.mark.parametrize("name", ["x2", "x3", "x4"])
def test_make_son_reproduces_fixture_son(ref_root, name):
    from tests.support import load_fixture

    fx = load_fixture(ref_root, name)
    son = make_son(fx["lr"] / 255, fx["graph_scale"]) * 255
    assert son.shape == fx["son"].shape
    assert (son - fx["son"]).abs().max() < 1e-9


# ---------------------------------------------------------------- a named set is the published set (issue 16, fault 3)

def test_check_reports_an_extra_image(data_root, tmp_path):
    from tests.support import copy_set

    root = copy_set(data_root, tmp_path / "root")
    shutil.copy(data_root / "Set14" / "zebra.png", root / "Set5" / "zebra.png")
    (root / "Set5" / "notes.txt").write_text("not an image: not scored, not extra")
    rep = check_data_root(root, ["Set5"])
    assert rep.ok == 5 and rep.extra == ["Set5/zebra.png"] and not rep.passed
    assert rep.problems() == "1 extra (Set5/zebra.png)"


def test_verify_named_set(data_root, tmp_path):
    from ignn_lab.data.datasets import DataMismatchError, verify_named_set
    from tests.support import copy_set

    root = copy_set(data_root, tmp_path / "root")
    records = list_images("Set5", root)
    assert verify_named_set("set5", root, records)
    with open(records[4].path, "ab") as f:
        f.write(b"\0")  # altered (its size now differs too): found even when only the first image is hashed
    with pytest.raises(DataMismatchError, match=r"Set5 in .* does not match its MANIFEST.tsv: 1 altered "
                                                r"\(Set5/woman.png\)"):
        verify_named_set("Set5", root, records[:1])
    (root / "MANIFEST.tsv").unlink()
    assert verify_named_set("Set5", root, records) is False  # nothing to verify against: unverified, not refused
    assert verify_named_set("skimage") is False
    with pytest.raises(ValueError, match="lists no set 'Nope'"):
        check_data_root(data_root, ["Nope"])
