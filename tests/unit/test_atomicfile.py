"""shared/atomicfile.py: a reader sees the old file or the new one, and nothing is left."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from shared.atomicfile import atomic_file, atomic_write


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "model.onnx"
    atomic_write(target, b"old")
    atomic_write(target, "new", fsync=True)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.onnx"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic_write(target, b"old")

    def interrupted() -> None:
        with atomic_file(target) as out:
            out.tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        interrupted()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_without_a_commit_nothing_changes(tmp_path: Path) -> None:
    target = tmp_path / "u2netp.onnx"
    with atomic_file(target) as out:
        out.tmp.write_bytes(b"wrong bytes")  # a checksum that failed: no commit
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_fifo_is_written_into_never_replaced(tmp_path: Path) -> None:
    # renaming over a special file replaced it: as root, `cutout remove x.jpg /dev/null`
    # would have replaced /dev/null itself with a PNG
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    atomic_write(fifo, b"through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_a_character_device_stays_one(tmp_path: Path) -> None:
    # a private null device (never the system's /dev/null: a regression would replace it)
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    atomic_write(device, b"discarded")
    assert stat.S_ISCHR(device.lstat().st_mode)
    assert device.read_bytes() == b""


def test_a_symlink_is_written_through(tmp_path: Path) -> None:
    target = tmp_path / "real.png"
    target.write_bytes(b"old")
    link = tmp_path / "link.png"
    link.symlink_to(target)
    atomic_write(link, b"new")
    assert link.is_symlink()
    assert target.read_bytes() == b"new"
