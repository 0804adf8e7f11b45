"""Writing files safely: atomically, with the user's umask, leaving nothing behind.

Every file skrank writes (saved models, token cache entries) goes through
:func:`atomic_write`: the bytes go to a temporary file in the target folder,
which is renamed over the target only once complete, so a reader never sees
a half-written file and a failed or interrupted write leaves no temporary.
``tempfile.mkstemp`` creates files readable by their owner only; the final
file gets the permissions ``open()`` would give (0666 less the umask), so a
shared cache folder stays readable by colleagues.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["TEMP_PREFIX", "atomic_write", "file_mode", "remove_stale_temporaries"]

TEMP_PREFIX = ".tmp-skrank-"
_UMASK_LOCK = threading.Lock()


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


def atomic_write(path: str | os.PathLike, data: bytes | Callable[[str], None]) -> None:
    """Write ``data`` (bytes, or a function writing to a given path) to ``path`` atomically."""
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
