"""A run's outputs, replaced together: the folder is checked before the work, the files are staged while the run
goes on, and they are moved into place only when it succeeds.

A run that fails (bad input found late, no space left, Ctrl-C) leaves the folder as it was: the previous run's
files, unchanged, and nothing of the new run. A run that succeeds leaves exactly its own set: files of the
previous run that it does not produce (``images/`` of an earlier ``--save-images`` run, say) are removed with
the rest of the old set. Staging happens in a hidden folder inside the output folder, so every move is a rename
on one file system (no copy that could fail half-way); only a crash inside the final renames, which take
microseconds, could mix the two sets.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from ignn_lab.data.io import OutputError

__all__ = ["OutputSet", "STAGING_PREFIX", "output_set"]

STAGING_PREFIX = ".ignn-lab-staging-"


def _missing_ancestor(folder: Path) -> Path | None:
    """The topmost folder of ``folder``'s chain that does not exist yet (None when ``folder`` exists)."""
    top = None
    for p in [folder, *folder.parents]:
        if p.exists():
            break
        top = p
    return top


class OutputSet:
    """The files named ``members`` inside ``folder``, written as one set (module docstring).

    Use it as a context manager; write each member at :meth:`path` (a file or a folder under the staging
    folder). The set is committed when the block ends without an exception and discarded otherwise.

    Args:
        folder: the output folder; created (with its parents) when missing, and removed again when the run
            fails and it was created for it.
        members: the top-level names of the run's outputs (``results.json``, ``images`` …).
        inputs: files the run reads; a member that is one of them, or holds one, is refused before any work.
        what: how errors name the folder (``--out``).

    Raises:
        OutputError: on entering, when the folder is a file, cannot be created or cannot be written, or a member
            would overwrite an input; on leaving, when a member cannot be written (the message names it).
    """

    def __init__(self, folder: str | os.PathLike, members: Iterable[str], *, inputs: Iterable[os.PathLike] = (),
                 what: str = "output folder"):
        self.folder = Path(folder).expanduser()
        self.members = tuple(dict.fromkeys(members))
        for m in self.members:
            if not m or Path(m).name != m or m in (".", ".."):
                raise ValueError(f"an output member is a plain file or folder name, got {m!r}")
        self.what = what
        self._inputs = [Path(p).expanduser() for p in inputs]
        self.staging: Path | None = None
        self._created: Path | None = None

    # -- checks before the work
    def _check_inputs(self) -> None:
        folder = self.folder.resolve()
        for src in self._inputs:
            s = src.resolve()
            for m in self.members:
                dst = folder / m
                if s == dst:
                    raise OutputError(f"writing {self.folder / m} would overwrite the input {src}; choose another "
                                      f"{self.what}")
                if dst in s.parents:
                    raise OutputError(f"writing {self.folder / m} would replace the folder that holds the input "
                                      f"{src}; choose another {self.what}")

    def open(self) -> OutputSet:
        """Check the folder, create it and the staging folder. Called by ``with``."""
        f = self.folder
        if f.exists() and not f.is_dir():
            raise OutputError(f"{f} is a file; the {self.what} must be a folder (it is created when missing)")
        self._check_inputs()
        self._created = _missing_ancestor(f)
        try:
            f.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise OutputError(f"cannot create the {self.what} {f}: a part of the path is a file") from None
        except OSError as exc:
            raise OutputError(f"cannot create the {self.what} {f}: {exc.strerror}") from None
        try:
            self.staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=f))
        except OSError as exc:
            self._remove_created()
            raise OutputError(f"cannot write into the {self.what} {f}: {exc.strerror}; it must be a writable "
                              "folder") from None
        return self

    def path(self, name: str) -> Path:
        """Where to write the member ``name`` during the run (inside the staging folder)."""
        if self.staging is None:
            raise RuntimeError("OutputSet.path() before open()")
        if name not in self.members:
            raise ValueError(f"{name!r} is not one of this output set's members {list(self.members)}")
        return self.staging / name

    def final(self, name: str) -> Path:
        """Where the member ``name`` will be once the set is committed."""
        return self.folder / name

    # -- after the work
    def commit(self) -> None:
        """Move the staged members into the folder; remove the old set's members this run did not write."""
        if self.staging is None:
            raise RuntimeError("OutputSet.commit() before open()")
        trash = self.staging / ".replaced"
        trash.mkdir()
        for m in self.members:
            new, dst = self.staging / m, self.folder / m
            if new.is_file() and dst.is_file() and not dst.is_symlink():
                os.chmod(new, dst.stat().st_mode & 0o7777)  # as open() would: the file keeps its permissions
                os.replace(new, dst)
                continue
            if os.path.lexists(dst):
                os.replace(dst, trash / m)
            if os.path.lexists(new):
                os.replace(new, dst)
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging = None

    def discard(self) -> None:
        """Drop the staged files; the folder keeps the previous set (and is removed if this run created it)."""
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        self._remove_created()

    def _remove_created(self) -> None:
        if self._created is None:
            return
        for p in [self.folder, *self.folder.parents]:
            try:
                p.rmdir()  # only empty folders go
            except OSError:
                break
            if p == self._created:
                break

    def __enter__(self) -> OutputSet:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            staging = self.staging
            self.discard()
            if isinstance(exc, OSError) and staging is not None:
                name = exc.filename if exc.filename and not isinstance(exc, OutputError) else None
                text = f"cannot write {name}: {exc.strerror}" if name else str(exc)
                if str(staging) in text:  # name the file where it was going, not its staging place
                    raise OutputError(text.replace(str(staging), str(self.folder)).removesuffix(
                        "; nothing was written") + f"; {self.folder} is unchanged") from None
            return
        try:
            self.commit()
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot move the outputs into {self.folder}: {exc.strerror}") from None


@contextmanager
def output_set(out: str | os.PathLike | OutputSet | None, members: Iterable[str], *,
               inputs: Iterable[os.PathLike] = (), what: str = "output folder") -> Iterator[OutputSet | None]:
    """``OutputSet(out, members)`` as a context; None when ``out`` is None; an open OutputSet passed as ``out``
    is used as it is (a caller that writes more members commits them all together)."""
    if out is None:
        yield None
    elif isinstance(out, OutputSet):
        missing = [m for m in members if m not in out.members]
        if missing:
            raise ValueError(f"the output set of {out.folder} lacks the members {missing}")
        yield out
    else:
        with OutputSet(out, members, inputs=inputs, what=what) as s:
            yield s
