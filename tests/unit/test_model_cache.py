"""The worker's cache of served models refuses a stored file that cannot be served.

A model registered before registration refused such graphs (an operator of a foreign
domain) reaches a worker with the right sha256: the job must fail with the model's code,
``invalid_model``, not ``model_integrity`` (which says the bytes were tampered with).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import InvalidModel
from shared.onnx.modelfile import ModelIntegrityError, sha256_of
from testkit import registration_graphs as graphs
from worker.engine.custom import ModelCache


def test_an_unservable_registered_file_is_invalid_model_and_not_cached(tmp_path: Path) -> None:
    data = graphs.foreign_domain()
    cache = ModelCache(tmp_path)
    with pytest.raises(InvalidModel, match=r"evil\.ops"):
        cache.verified("legacy", sha256_of(data), lambda: iter([data]))
    assert not cache.path(sha256_of(data)).exists()


def test_bytes_that_do_not_match_are_an_integrity_error(tmp_path: Path) -> None:
    data = graphs.mean_mask()
    cache = ModelCache(tmp_path)
    with pytest.raises(ModelIntegrityError, match="does not match"):
        cache.verified("swapped", "0" * 64, lambda: iter([data]))
    assert list(tmp_path.rglob("*.onnx")) == []


def test_a_servable_file_is_cached_once(tmp_path: Path) -> None:
    data = graphs.mean_mask()
    cache = ModelCache(tmp_path)
    path = cache.verified("ok", sha256_of(data), lambda: iter([data]))
    assert path.read_bytes() == data

    def never() -> list[bytes]:
        raise AssertionError("fetched again")

    assert cache.verified("ok", sha256_of(data), never) == path
