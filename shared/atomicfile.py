"""Writing a file so that a reader sees the old content or the new, never a part.

The bytes go to a temporary file beside the target (same folder, so the same file
system), which replaces the target by one rename (``os.replace``, atomic on POSIX). A
write that fails or is interrupted leaves the target as it was and removes its
temporary file; a process killed at the wrong moment can leave one behind, named
``.<name>.<random><suffix>``, which never shadows the target. Standard library only
(the API client, cutout/client.py, uses it).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

FILE_MODE = 0o644  # mkstemp's 0o600 would hide models and results from other users


class AtomicFile:
    """A temporary file :attr:`tmp` that :meth:`commit` moves onto :attr:`path`."""

    def __init__(self, path: Path, tmp: Path, fsync: bool) -> None:
        self.path = path
        self.tmp = tmp
        self.fsync = fsync
        self.committed = False

    def commit(self) -> None:
        """Replace the target with the temporary file (flushed to disk first if asked)."""
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    handle = AtomicFile(path, Path(name), fsync)
    try:
        yield handle
    finally:
        if not handle.committed:
            with contextlib.suppress(OSError):
                handle.tmp.unlink()


def atomic_write(path: Path, data: bytes | str, *, fsync: bool = False) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_file(path, fsync=fsync) as out:
        out.tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        out.commit()
