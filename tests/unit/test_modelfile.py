"""Custom model files: names, the I/O check (onnx only), records, the local store, LRU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.contract.options import parse_options
from shared.errors import InvalidOption
from shared.onnx.modelfile import (
    ModelFileError,
    ModelIntegrityError,
    check_io,
    check_name,
    check_record,
    sha256_of,
)


@pytest.fixture(scope="module")
def u2netp_bytes(model_home: Path) -> bytes:
    path = model_home / "u2netp.onnx"
    if not path.exists():
        pytest.skip("u2netp weights not fetched (cutout models fetch u2netp)")
    return path.read_bytes()


def test_names() -> None:
    assert check_name("watches-v2") == "watches-v2"
    for bad in ("", "U2", "u2net", "u2netp", "-x", "a" * 49, "a/b", "a b"):
        with pytest.raises(ModelFileError):
            check_name(bad)


def test_a_long_bad_name_is_echoed_cut_short() -> None:
    with pytest.raises(ModelFileError) as refused:
        check_name("x" * 10_000 + "/")
    assert len(str(refused.value)) < 200
    assert "10001 chars" in str(refused.value)


def test_pinned_files_pass_the_io_check(u2netp_bytes: bytes) -> None:
    check_io(u2netp_bytes)


def test_other_io_is_refused(u2netp_bytes: bytes) -> None:
    import onnx

    model = onnx.load_model_from_string(u2netp_bytes)
    model.graph.output.pop()  # six outputs instead of seven
    with pytest.raises(ModelFileError, match="outputs must be"):
        check_io(model.SerializeToString())
    model = onnx.load_model_from_string(u2netp_bytes)
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 256
    with pytest.raises(ModelFileError, match="input must be"):
        check_io(model.SerializeToString())
    with pytest.raises(ModelFileError, match="not an ONNX model"):
        check_io(b"\x89PNG not a model")


def test_record_must_name_the_file() -> None:
    record = {"name": "w", "base": {"name": "u2netp"}, "sha256": "a" * 64}
    assert check_record(record, sha256="a" * 64) == record
    with pytest.raises(ModelFileError, match="sha256"):
        check_record(record, sha256="b" * 64)
    with pytest.raises(ModelFileError, match="base"):
        check_record({**record, "base": "resnet"}, sha256="a" * 64)
    with pytest.raises(ModelFileError, match="lacks"):
        check_record({"name": "w"}, sha256="a" * 64)


def test_a_record_must_be_unicode_text() -> None:
    """A lone surrogate escape parses in Python, but Redis's cjson cannot read the record
    back: stored, it escaped the byte quota and the API answered 503 (issue 29 sweep)."""
    record = json.loads(
        '{"name": "w", "base": "u2netp", "sha256": "%s", "x": "\\ud800"}' % ("a" * 64)
    )
    with pytest.raises(ModelFileError, match="not valid Unicode"):
        check_record(record, sha256="a" * 64)
    with pytest.raises(ModelFileError, match="not valid Unicode"):
        check_record({**record, "x": 1, "\udc00": 1}, sha256="a" * 64)
    # a surrogate pair is a character (an emoji): fine
    paired = json.loads(
        '{"name": "w", "base": "u2netp", "sha256": "%s", "x": "\\ud83d\\ude00"}' % ("a" * 64)
    )
    assert check_record(paired, sha256="a" * 64)["x"] == "\U0001f600"


def test_local_store_refuses_a_changed_file(tmp_path: Path, u2netp_bytes: bytes) -> None:
    from worker.engine.custom import LocalModels

    store = LocalModels(tmp_path)
    record = {"base": {"name": "u2netp"}, "sha256": sha256_of(u2netp_bytes)}
    store.add("mine", u2netp_bytes, record)
    assert store.resolve("mine") == store.path("mine")
    assert json.loads(store.record_path("mine").read_text())["name"] == "mine"
    store.path("mine").write_bytes(u2netp_bytes[:-1] + b"\0")
    with pytest.raises(ModelIntegrityError, match="does not match"):
        store.resolve("mine")
    assert store.remove("mine")
    assert store.names() == []


def test_lru_drops_the_least_recently_used() -> None:
    from worker.engine.custom import LRU

    lru: LRU[int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # a is now the most recent
    lru.put("c", 3)
    assert lru.keys() == ["a", "c"]
    assert lru.get("b") is None


def test_options_take_custom_names_only_when_allowed() -> None:
    with pytest.raises(InvalidOption, match="registered"):
        parse_options({"model": "watches"})
    watches = lambda name: name == "watches"  # noqa: E731
    assert parse_options({"model": "watches"}, models=watches).model == "watches"
    with pytest.raises(InvalidOption):
        parse_options({"model": "jewellery"}, models=watches)
