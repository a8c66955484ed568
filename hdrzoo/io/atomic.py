"""Atomic writes: a file appears complete under its name, or not at all.

Each file is written to a temporary name in its target folder and renamed into place
(``os.replace`` is atomic within one file system), so a reader, or a run killed mid-way,
never sees a partial file. :func:`_write_all_or_nothing` extends this to the several files of
one bracket.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from hdrzoo.errors import HDRZooError, WriteError

_FileJob = tuple[Path, Callable[[Path], None]]
"""A target path and the function that writes its content into a given (temporary) path."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps ``path``'s suffix so that encoders choosing a codec by extension
    work. On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise WriteError(f"cannot write {path}: folder {folder} does not exist; create it first")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=folder)
    except OSError as err:
        raise WriteError(
            f"cannot write {path}: {err.strerror}; choose a writable output folder"
        ) from err
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _write_all_or_nothing(jobs: list[_FileJob], folders: list[Path]) -> None:
    """Write every job to a temporary file, then rename them all; on failure remove everything.

    Args:
        jobs: the files to write, in order.
        folders: the folders they go in; those missing are created, and removed again
            (being empty) if a job fails.
    """
    created: list[Path] = []
    try:
        for folder in folders:
            if not folder.is_dir():
                try:
                    folder.mkdir(parents=True)
                except OSError as err:
                    raise WriteError(
                        f"cannot create {folder}: {err.strerror}; choose a writable folder"
                    ) from err
                created.append(folder)
        with contextlib.ExitStack() as stack:
            for target, write in jobs:
                tmp = stack.enter_context(atomic_path(target))
                try:
                    write(tmp)
                except HDRZooError:
                    raise
                except Exception as err:
                    raise WriteError(f"could not write {target}: {err}") from err
    except BaseException:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
