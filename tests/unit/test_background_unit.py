"""The worker's own check of a job's background key (defence in depth behind the API)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from shared.contract.options import parse_options
from shared.errors import NotFound, UploadNotFound
from worker.background import read_background


class Storage:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.asked: list[str] = []

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        self.asked.append(key)
        if key not in self.objects:
            raise NotFound(key)
        return self.objects[key]


def ctx(storage: Storage) -> SimpleNamespace:
    settings = SimpleNamespace(max_upload_bytes=1000, allowed_private_networks=())
    return SimpleNamespace(settings=settings, storage=storage)


def test_no_background_reads_nothing() -> None:
    storage = Storage({})
    assert read_background(ctx(storage), "shop", parse_options({})) is None
    assert storage.asked == []


def test_own_upload_is_read() -> None:
    storage = Storage({"uploads/shop/upl_1": b"bytes"})
    options = parse_options({"bg_upload_key": "uploads/shop/upl_1"})
    assert read_background(ctx(storage), "shop", options) == b"bytes"


def test_another_tenants_key_is_never_read() -> None:
    storage = Storage({"uploads/other/upl_1": b"secret"})
    options = parse_options({"bg_upload_key": "uploads/other/upl_1"})
    with pytest.raises(UploadNotFound):
        read_background(ctx(storage), "shop", options)
    assert storage.asked == []


def test_a_missing_upload_is_upload_not_found() -> None:
    options = parse_options({"bg_upload_key": "uploads/shop/gone"})
    with pytest.raises(UploadNotFound):
        read_background(ctx(Storage({})), "shop", options)
