"""shared/atomicfile.py: a reader sees the old file or the new one, and nothing is left."""

from __future__ import annotations

import stat
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
