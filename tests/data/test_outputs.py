"""A run's outputs are replaced as one set: checked before the work, old set or new set, never a mix."""

import os
import stat

import pytest

from ignn_lab.data.io import OutputError, atomic_write_bytes
from ignn_lab.data.outputs import STAGING_PREFIX, OutputSet
from tests.support import disk_full, snapshot, unwritable_folder

MEMBERS = ("results.json", "table.md", "images")


def _run(folder, texts: dict, images: bool):
    with OutputSet(folder, MEMBERS) as outs:
        for name, text in texts.items():
            atomic_write_bytes(outs.path(name), text.encode())
        if images:
            atomic_write_bytes(outs.path("images") / "Set5" / "a.png", b"png")
    return outs


def test_success_replaces_the_whole_set(tmp_path):
    out = tmp_path / "run"
    _run(out, {"results.json": "old", "table.md": "old"}, images=True)
    (out / "notes.txt").write_text("mine")  # not a member: never touched
    _run(out, {"results.json": "new", "table.md": "new"}, images=False)
    assert (out / "results.json").read_text() == "new" and (out / "table.md").read_text() == "new"
    assert not (out / "images").exists()  # the old run's images do not stay beside the new results
    assert (out / "notes.txt").read_text() == "mine"
    assert not [p for p in out.iterdir() if p.name.startswith(STAGING_PREFIX)]


def test_a_failure_leaves_the_old_set(tmp_path, monkeypatch):
    """A full disk at the second file: the first new file must not stand beside the old second one."""
    out = tmp_path / "run"
    _run(out, {"results.json": "old", "table.md": "old"}, images=True)
    before = snapshot(out)
    disk_full(monkeypatch, "table.md")
    with pytest.raises(OutputError, match=f"cannot write {out / 'table.md'}: No space left on device; {out} is "
                                          "unchanged"):
        _run(out, {"results.json": "new", "table.md": "new"}, images=False)
    assert snapshot(out) == before


def test_an_exception_in_the_work_leaves_the_old_set(tmp_path):
    out = tmp_path / "run"
    _run(out, {"results.json": "old", "table.md": "old"}, images=False)
    before = snapshot(out)
    with pytest.raises(KeyboardInterrupt):
        with OutputSet(out, MEMBERS) as outs:
            atomic_write_bytes(outs.path("results.json"), b"new")
            raise KeyboardInterrupt
    assert snapshot(out) == before


def test_a_folder_created_for_a_failed_run_is_removed(tmp_path):
    out = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError):
        with OutputSet(out, MEMBERS):
            raise RuntimeError("late failure")
    assert not (tmp_path / "a").exists()


def test_bad_output_folders_fail_before_any_work(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="file is a file; the output folder must be a folder"):
        OutputSet(tmp_path / "file", MEMBERS).open()
    with pytest.raises(OutputError, match="a part of the path is a file"):
        OutputSet(tmp_path / "file" / "sub", MEMBERS).open()
    ro = unwritable_folder(tmp_path)
    with pytest.raises(OutputError, match=f"cannot (write into|create) the output folder {ro}"):
        OutputSet(ro, MEMBERS).open()


def test_an_input_is_never_an_output(tmp_path):
    (tmp_path / "results.json").write_text("input")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"input")
    with pytest.raises(OutputError, match="would overwrite the input"):
        OutputSet(tmp_path, MEMBERS, inputs=[tmp_path / "results.json"]).open()
    with pytest.raises(OutputError, match="would replace the folder that holds the input"):
        OutputSet(tmp_path, MEMBERS, inputs=[tmp_path / "images" / "a.png"]).open()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(STAGING_PREFIX)]


def test_committed_files_keep_the_mode_open_would_give(tmp_path):
    out = tmp_path / "run"
    old = os.umask(0o027)
    try:
        _run(out, {"results.json": "a", "table.md": "a"}, images=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE((out / "results.json").stat().st_mode) == 0o640
    (out / "table.md").chmod(0o604)
    _run(out, {"results.json": "b", "table.md": "b"}, images=False)
    assert stat.S_IMODE((out / "table.md").stat().st_mode) == 0o604  # a replaced file keeps its permissions
