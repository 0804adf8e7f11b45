"""Reading and writing files safely: atomically, with the user's umask, leaving nothing behind.

:func:`read_regular_file` reads a file that a user or another process may have
put anywhere (an image, a cache entry): it never blocks on a FIFO or device,
never follows a name twice (what is checked is what is read) and never reads
more than a bound.

Every file skrank writes (saved models, token cache entries, the command
line's outputs) goes through :func:`atomic_write`, which first refuses a
destination that is not a regular file (:func:`check_destination`): the bytes
go to a temporary file in the target folder, which is renamed over the target
only once complete, so a reader never sees a half-written file and a failed or
interrupted write leaves no temporary.
``tempfile.mkstemp`` creates files readable by their owner only; the final
file gets the permissions ``open()`` would give (0666 less the umask), so a
shared cache folder stays readable by colleagues.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from skrank._quote import shown

__all__ = [
    "TEMP_PREFIX",
    "FileTooLargeError",
    "NotRegularFileError",
    "atomic_write",
    "check_destination",
    "file_mode",
    "open_regular_file",
    "read_regular_file",
    "remove_stale_temporaries",
]

TEMP_PREFIX = ".tmp-skrank-"
_UMASK_LOCK = threading.Lock()
# O_NONBLOCK: opening a FIFO must not wait for a writer (it is then refused).
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


class NotRegularFileError(OSError):
    """The path names a FIFO, device or socket: reading it could block or never end."""


class FileTooLargeError(OSError):
    """The file is larger than the caller's bound; ``size`` is its size in bytes."""

    def __init__(self, size: int):
        super().__init__(f"file of {size} bytes")
        self.size = size


def read_regular_file(path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """The content of the regular file at ``path``, of at most ``max_bytes`` bytes.

    Parameters
    ----------
    path : str or os.PathLike
    max_bytes : int, optional
        Refuse a larger file without reading it (None: no bound).

    Returns
    -------
    bytes
        What the file held when read (shorter than its size then if it shrank).

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        Nothing is there.
    IsADirectoryError
        A folder is there.
    NotRegularFileError
        A FIFO, device or socket is there.
    FileTooLargeError
        The file is over ``max_bytes``.
    OSError
        Anything else that prevents reading it (permissions, I/O errors).
    """
    with open_regular_file(path, max_bytes) as (fh, _):
        return fh.read() if max_bytes is None else fh.read(max_bytes + 1)


@contextlib.contextmanager
def open_regular_file(path: str | os.PathLike, max_bytes: int | None = None):
    """Open the regular file at ``path`` for reading: ``(binary file, size when opened)``.

    For a caller that reads in steps (a model file: its header, then only as
    many bytes as the header implies). The checks and the errors are those of
    :func:`read_regular_file`; the size is of the file opened, not of the name.
    """
    try:
        fd = os.open(path, _READ_FLAGS)
    except PermissionError:
        if os.path.isdir(path):  # Windows refuses to open a folder
            raise IsADirectoryError(f"is a directory: {shown(os.fsdecode(path))}") from None
        raise
    try:
        st = os.fstat(fd)  # of the file opened, not of the name: what is checked is read
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"is a directory: {shown(os.fsdecode(path))}")
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(f"not a regular file: {shown(os.fsdecode(path))}")
        if max_bytes is not None and st.st_size > max_bytes:
            raise FileTooLargeError(st.st_size)
        with open(fd, "rb", closefd=False) as fh:
            yield fh, st.st_size
    finally:
        os.close(fd)


def _umask() -> int:
    try:  # Linux: read it without changing it
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:  # elsewhere: set and restore at once
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The permission bits a new regular file gets from ``open()`` here."""
    return 0o666 & ~_umask()


def check_destination(path: str | os.PathLike) -> None:
    """Refuse to replace ``path`` unless it is absent or a regular file (or a link to one).

    Replacing is renaming over the name, so a device or a FIFO there would be
    removed and a regular file left in its place: as root, saving to
    ``/dev/null`` would replace ``/dev/null``. The name itself is examined
    (``os.lstat``): a symbolic link to a regular file is replaced by the new
    file (its target is left as it was), one to anything else is refused, and
    a dangling link is replaced.

    Raises
    ------
    IsADirectoryError
        A folder (or a link to one) is there.
    NotRegularFileError
        A FIFO, device or socket (or a link to one) is there.
    """
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            st = os.stat(path)
    except (OSError, ValueError):
        # Nothing there, a dangling link, or a name the write itself refuses and
        # says why (too long, a NUL byte, a folder that is not one).
        return
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{shown(os.fsdecode(path))} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(
            f"{shown(os.fsdecode(path))} is not a regular file (a device, a pipe or a socket): "
            "writing would replace it; give a file name"
        )


def atomic_write(path: str | os.PathLike, data: bytes | Callable[[str], None]) -> None:
    """Write ``data`` (bytes, or a function writing to a given path) to ``path`` atomically.

    ``path`` is checked first (:func:`check_destination`): a device, a FIFO or
    a folder there is refused, never replaced.
    """
    check_destination(path)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, (bytes, bytearray, memoryview)):
                fh.write(data)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            data(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def remove_stale_temporaries(folder: str | os.PathLike, older_than_s: float = 3600.0) -> int:
    """Delete temporaries that a killed writer left in ``folder``; returns how many.

    Only files named with :data:`TEMP_PREFIX` and untouched for ``older_than_s``
    seconds are removed, so a write in progress elsewhere is left alone.
    """
    removed = 0
    cutoff = time.time() - older_than_s
    for entry in Path(folder).glob(f"{TEMP_PREFIX}*"):
        try:
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                entry.unlink()
                removed += 1
        except OSError:
            continue
    return removed
