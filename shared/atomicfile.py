"""Writing a file so that a reader sees the old content or the new, never a part.

The bytes go to a temporary file beside the target (same folder, so the same file
system), which replaces the target by one rename (``os.replace``, atomic on POSIX). A
write that fails or is interrupted leaves the target as it was and removes its
temporary file; a process killed at the wrong moment can leave one behind, named
``.<name>.<random><suffix>``, which never shadows the target. Standard library only
(the API client, cutout/client.py, uses it).

A target that is a symbolic link is written through: the file it points to is replaced
and the link stays. A target that exists and is no regular file (``/dev/null``, a FIFO,
a terminal) is written into, never replaced: renaming over ``/dev/null`` as root would
replace the device itself. Its temporary file lies in the system's temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

FILE_MODE = 0o644  # mkstemp's 0o600 would hide models and results from other users


class AtomicFile:
    """A temporary file :attr:`tmp` that :meth:`commit` moves onto :attr:`path`."""

    def __init__(self, path: Path, tmp: Path, fsync: bool, special: bool = False) -> None:
        self.path = path
        self.tmp = tmp
        self.fsync = fsync
        self.special = special
        self.committed = False

    def commit(self) -> None:
        """Replace the target with the temporary file (flushed to disk first if asked);
        a special target is written into instead."""
        if self.special:
            with open(self.tmp, "rb") as source, open(self.path, "wb") as target:
                shutil.copyfileobj(source, target)
            self.committed = True
            self.tmp.unlink()
            return
        if self.fsync:
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.chmod(self.tmp, FILE_MODE)
        os.replace(self.tmp, self.path)
        self.committed = True


@contextlib.contextmanager
def atomic_file(path: Path, *, suffix: str = ".part", fsync: bool = False) -> Iterator[AtomicFile]:
    """An empty temporary file beside ``path`` (its folder created if missing); write to
    ``.tmp`` and call ``.commit()``. Without a commit (an error, or a check of the bytes
    that failed) the temporary file is removed and ``path`` stays as it was."""
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    special = _special(path)
    folder = Path(tempfile.gettempdir()) if special else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=folder)
    os.close(fd)
    handle = AtomicFile(path, Path(name), fsync, special)
    try:
        yield handle
    finally:
        if not handle.committed:
            with contextlib.suppress(OSError):
                handle.tmp.unlink()


def _special(path: Path) -> bool:
    """Whether ``path`` exists and is neither a regular file nor a folder."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def atomic_write(path: Path, data: bytes | str, *, fsync: bool = False) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_file(path, fsync=fsync) as out:
        out.tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        out.commit()
