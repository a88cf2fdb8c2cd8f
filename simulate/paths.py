"""Output paths checked before the work, and a lock per output folder held during it.

Every command checks each file and folder it will write *before* it reads data, simulates or
trains: a path under a regular file, in an unwritable folder, or naming a folder where a file
is wanted is refused in one line, and nothing is created. Missing parent folders are created
only when the output is written (:func:`make_parent`), so a refused run leaves the disk as it
was.

A folder that a run or dataset is being written into holds ``.synthcare.lock`` while the
writer works (:func:`folder_lock`): a second writer on the same folder (another shell; in a
``torchrun`` job rank 0 alone takes it) is refused in one line naming the folder and the process
that holds it. The lock is an ``flock`` (POSIX) or ``msvcrt`` byte lock on that file: the
operating system drops it when the holder exits or is killed, so a crash never leaves a stale
lock, and the file's text says who held it last. The file is removed when the lock is released.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import SynthcareError

LOCK_NAME = ".synthcare.lock"


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_creatable(path: Path, flag: str) -> None:
    """The first existing ancestor of ``path`` must be a writable folder."""
    base = _nearest_existing(path.parent if str(path.parent) else Path("."))
    if not base.is_dir():
        raise SynthcareError(f"cannot write {flag} {path}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise SynthcareError(f"cannot write {flag} {path}: folder {base} is not writable")


def check_output_file(path: str | Path, flag: str) -> Path:
    """Refuse, before any work, an output file that cannot be written: ``flag`` names the
    option in the message (e.g. ``-o``). Its missing parent folders are allowed (created by
    :func:`make_parent` when the file is written)."""
    path = Path(path)
    if path.is_dir():
        raise SynthcareError(f"cannot write {flag} {path}: it is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise SynthcareError(f"cannot write {flag} {path}: the file is read-only")
    _check_creatable(path, flag)
    return path


def check_output_folder(path: str | Path, flag: str) -> Path:
    """Refuse, before any work, an output folder that cannot be created or written."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise SynthcareError(f"cannot write {flag} {path}: it is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise SynthcareError(f"cannot write {flag} {path}: the folder is not writable")
        return path
    _check_creatable(path, flag)
    return path


def check_new_folder(path: str | Path, flag: str) -> Path:
    """Refuse, before any work, a folder output (e.g. an OME-Zarr image) that exists already or
    cannot be created: such outputs are never replaced."""
    path = Path(path)
    if path.exists():
        raise SynthcareError(f"{flag} {path} exists: remove it or give another name")
    _check_creatable(path, flag)
    return path


@contextmanager
def staged_folder(path: str | Path) -> Iterator[Path]:
    """Build a new folder under a hidden sibling name and rename it onto ``path`` when the block
    completes; if the block fails or is interrupted the partial folder is removed, so nothing
    half-written is ever left at ``path``."""
    path = Path(path)
    make_parent(path)
    tmp = path.parent / f".{path.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def make_parent(path: str | Path) -> Path:
    """Create the folder an output file goes into (after :func:`check_output_file`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def same_file(a: str | Path, b: str | Path) -> bool:
    """True if two paths name the same existing file."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


def holder(folder: str | Path) -> str:
    """Who holds (or last held) the lock of ``folder``, as written in its lock file."""
    try:
        return (Path(folder) / LOCK_NAME).read_text().strip() or "another process"
    except OSError:
        return "another process"


@contextmanager
def folder_lock(folder: str | Path, what: str = "run") -> Iterator[Path]:
    """Hold the lock of ``folder`` (created if needed) while the block runs; a folder locked by
    another process is refused with one line naming it and the holder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise SynthcareError(f"{folder} is being written by {holder(folder)}: wait for it to "
                                 f"finish (or stop it), or choose another folder for this {what}")
        try:  # the holder before us may have removed the file between our open and our lock
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        _unlock(fd)
        os.close(fd)
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:2]]) if sys.argv else "python"
    text = (f"synthcare process {os.getpid()} on {socket.gethostname()} since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} ({command})")
    os.ftruncate(fd, 0)
    os.write(fd, text.encode())
    try:
        yield folder
    finally:
        try:
            path.unlink()
        except OSError:
            pass
        _unlock(fd)
        os.close(fd)
