"""Corrected masks through the API (issue 27, item 1): ``PUT /v1/jobs/{id}/mask``, the
worker's re-render with the job's own options, result versions, ``job.corrected``.

The API in-process (Flask test client) on the session's Redis database, processed by the
session's shared `cutout worker` (u2netp and u2net, one job at a time); real SeaweedFS;
a local image server and webhook receiver on 127.0.0.1. Inputs are 96x72 photos of a
disc (testkit.batch.photo), on u2netp except ``refine`` (u2net). The corrected mask
erases the left half (the disc's left half, which the model keeps) and restores a
rectangle on the right that takes in backdrop the model drops.
"""

from __future__ import annotations

import csv
import io
import struct
import time
import zipfile
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from standardwebhooks.webhooks import Webhook

from shared.s3.keys import input_key
from shared.stores.corrections import CorrectionRecords
from testkit.batch import AUTH_A, AUTH_B, ImageServer, Receiver, make_app, photo
from tests.integration.conftest import WorkerProcess, wait_for

SIZE = (96, 72)
#: the restored rectangle (left, top, right, bottom); everything else is erased
RESTORED = (52, 8, 92, 64)


def corrected_mask(size: tuple[int, int] = SIZE) -> np.ndarray:
    mask = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    left, top, right, bottom = RESTORED
    mask[top:bottom, left:right] = 255
    if size != SIZE:
        return np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.LANCZOS))
    return mask


def png(pixels: np.ndarray, mode: str | None = None) -> bytes:
    out = io.BytesIO()
    image = Image.fromarray(pixels)
    (image.convert(mode) if mode else image).save(out, "PNG")
    return out.getvalue()


def rgba_mask() -> bytes:
    """The mask as the alpha of an RGBA PNG (its colour is noise: only alpha counts)."""
    noise = np.random.default_rng(0).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    return png(np.dstack([noise, corrected_mask()]))


def bomb_png(width: int, height: int) -> bytes:
    """A PNG header declaring ``width``x``height`` over a few bytes of data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def app(redis_url: str, s3_endpoint: str, s3_credentials: dict[str, str]) -> Flask:
    return make_app(redis_url, s3_endpoint)


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def job_of(client: FlaskClient, job_id: str, auth: dict[str, str] = AUTH_A) -> dict[str, Any]:
    return client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()  # type: ignore[no-any-return]


def finished(client: FlaskClient, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = job_of(client, job_id)
        return job if job["status"] in ("succeeded", "failed", "canceled") else None

    return wait_for(done, 180, 0.1)  # type: ignore[no-any-return]


def submit(
    client: FlaskClient, options: dict[str, Any], webhook: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"image": (io.BytesIO(photo(SIZE)), "disc.png"), "model": "u2netp"}
    body.update({name: str(value).lower() for name, value in options.items()})
    if webhook:
        body["webhook_url"] = webhook
    response = client.post(
        "/v1/jobs", data=body, content_type="multipart/form-data", headers=AUTH_A
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    job = finished(client, response.get_json()["id"])
    assert job["status"] == "succeeded", job
    return job


def put_mask(
    client: FlaskClient,
    job_id: str,
    data: bytes,
    *,
    multipart: bool = False,
    auth: dict[str, str] = AUTH_A,
    key: str | None = None,
) -> Any:
    headers = {**auth, **({"Idempotency-Key": key} if key else {})}
    if multipart:
        return client.put(
            f"/v1/jobs/{job_id}/mask",
            data={"mask": (io.BytesIO(data), "mask.png")},
            content_type="multipart/form-data",
            headers=headers,
        )
    return client.put(
        f"/v1/jobs/{job_id}/mask", data=data, content_type="image/png", headers=headers
    )


def settled(client: FlaskClient, job_id: str) -> dict[str, Any]:
    """The job once its correction is no longer pending."""

    def done() -> dict[str, Any] | None:
        job = job_of(client, job_id)
        return job if (job["correction"] or {}).get("status") != "pending" else None

    return wait_for(done, 120, 0.1)  # type: ignore[no-any-return]


def result(client: FlaskClient, job_id: str, version: int | None = None) -> Any:
    query = {"version": version} if version is not None else {}
    return client.get(f"/v1/jobs/{job_id}/result", query_string=query, headers=AUTH_A)


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def alpha(data: bytes) -> np.ndarray:
    return np.asarray(opened(data).getchannel("A"))


def check_plain(data: bytes) -> None:
    # the alpha is the mask, pixel for pixel; the colours are the photo's where kept
    assert np.array_equal(alpha(data), corrected_mask())
    rgba = np.asarray(opened(data))
    assert tuple(rgba[12, 88, :3]) == (225, 225, 225)  # backdrop the model had dropped


def check_canvas(data: bytes) -> None:
    # the restored rectangle (40x56), not the model's round disc, fills 85% of the canvas
    rgb = np.asarray(opened(data).convert("RGB")).astype(int)
    assert rgb.shape == (200, 200, 3)
    assert tuple(rgb[2, 2]) == (255, 0, 0)
    ys, xs = np.nonzero(np.abs(rgb - (255, 0, 0)).sum(axis=-1) > 60)
    width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    assert abs(height - 170) <= 3
    assert abs(width - round(40 * 170 / 56)) <= 3


def check_crop(data: bytes) -> None:
    # cropped to the restored rectangle grown by the 4 px margin (clamped to the image)
    left, top, right, bottom = RESTORED
    expected = corrected_mask()[top - 4 : bottom + 4, left - 4 : min(SIZE[0], right + 4)]
    assert np.array_equal(alpha(data), expected)


def check_jpeg(data: bytes) -> None:
    image = opened(data)
    assert image.format == "JPEG"
    rgb = np.asarray(image.convert("RGB")).astype(int)
    assert np.abs(rgb[36, 10] - (0, 255, 0)).max() < 12  # erased: the background colour
    assert np.abs(rgb[36, 70] - (0, 255, 0)).max() > 100  # restored: the photo


def check_zip(data: bytes) -> None:
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert sorted(archive.namelist()) == ["alpha.png", "color.jpg"]
    assert np.array_equal(np.asarray(opened(archive.read("alpha.png"))), corrected_mask())
    assert opened(archive.read("color.jpg")).size == SIZE


def check_mask_only(data: bytes) -> None:
    image = opened(data)
    assert image.mode == "L"
    assert np.array_equal(np.asarray(image), corrected_mask())


def check_refine(data: bytes) -> None:
    assert np.array_equal(alpha(data), corrected_mask())


def check_roi(data: bytes) -> None:
    expected = corrected_mask()
    expected[:, 70:] = 0  # outside the region of interest
    assert np.array_equal(alpha(data), expected)


def check_shadow(data: bytes) -> None:
    got = alpha(data)
    assert (got[10:62, 54:90] == 255).all()
    assert (got[:, :40] == 0).all()  # erased, beyond the shadow's reach


def check_scale_position(data: bytes) -> None:
    # the 40x56 rectangle at half the picture's height, in the top left corner
    ys, xs = np.nonzero(alpha(data))
    assert (xs.min(), ys.min()) == (0, 0)
    assert abs(ys.max() + 1 - 36) <= 1
    assert abs(xs.max() + 1 - round(40 * 36 / 56)) <= 1


def check_background_image(data: bytes) -> None:
    rgba = np.asarray(opened(data).convert("RGBA")).astype(int)
    assert (rgba[..., 3] == 255).all()
    assert tuple(rgba[36, 10, :3]) == (20, 40, 220)  # erased: the background image
    assert tuple(rgba[12, 88, :3]) == (225, 225, 225)  # restored backdrop of the photo


def check_matting(data: bytes) -> None:
    got = alpha(data)
    assert (got[20:52, 64:80] == 255).all()  # inside the restored rectangle
    assert (got[:, :40] == 0).all()


COMBINATIONS: list[tuple[dict[str, Any], Callable[[bytes], None], bool]] = [
    ({}, check_plain, False),
    ({"bg_color": "#ff0000", "canvas": "200x200"}, check_canvas, True),
    ({"crop": True, "margin": 4}, check_crop, False),
    ({"format": "jpeg", "bg_color": "#00ff00"}, check_jpeg, True),
    ({"format": "zip"}, check_zip, False),
    ({"mask_only": True}, check_mask_only, True),
    ({"refine": True, "model": "u2net"}, check_refine, False),
    ({"roi": "0 0 70 72"}, check_roi, False),
    ({"shadow": True}, check_shadow, True),
    ({"scale": "50%", "position": "0% 0%"}, check_scale_position, False),
    ({"bg_image_url": "BACKGROUND"}, check_background_image, False),
    ({"alpha_matting": True}, check_matting, False),
]


@pytest.mark.parametrize(
    ("options", "check", "multipart"),
    COMBINATIONS,
    ids=[
        "plain",
        "bg_color+canvas",
        "crop+margin",
        "jpeg+bg_color",
        "zip",
        "mask_only",
        "refine",
        "roi",
        "shadow",
        "scale+position",
        "background_image",
        "alpha_matting",
    ],
)
def test_a_corrected_mask_renders_the_result_again_with_the_jobs_options(
    client: FlaskClient,
    worker: WorkerProcess,
    images: ImageServer,
    options: dict[str, Any],
    check: Callable[[bytes], None],
    multipart: bool,
) -> None:
    if options.get("bg_image_url") == "BACKGROUND":
        backdrop = Image.new("RGB", (96, 72), (20, 40, 220))
        options = {
            "bg_image_url": images.add("/corrections/backdrop.png", png(np.asarray(backdrop)))
        }
    job = submit(client, options)
    job_id = job["id"]
    assert (job["result"]["version"], job["result"]["corrected"], job["correction"]) == (
        1,
        False,
        None,
    )
    first = result(client, job_id)
    assert first.status_code == 200
    mask = rgba_mask() if multipart else png(corrected_mask())
    answer = put_mask(client, job_id, mask, multipart=multipart)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    assert answer.headers["Location"] == f"/v1/jobs/{job_id}"
    assert answer.get_json()["correction"]["version"] == 2
    assert answer.get_json()["status"] == "succeeded"

    job = settled(client, job_id)
    assert job["correction"]["status"] == "succeeded", job["correction"]
    assert job["correction"]["error"] is None
    assert job["result"]["version"] == 2
    assert job["result"]["corrected"] is True
    assert job["result"]["content_type"] == first.mimetype
    newest = result(client, job_id)
    assert newest.status_code == 200
    assert newest.mimetype == first.mimetype
    check(newest.get_data())
    assert newest.get_data() != first.get_data()
    assert len(newest.get_data()) == job["result"]["bytes"]
    # version 1 stays, unchanged; version 2 by number is the newest
    assert result(client, job_id, 1).get_data() == first.get_data()
    assert result(client, job_id, 2).get_data() == newest.get_data()
    assert result(client, job_id, 3).status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/result?version=x", headers=AUTH_A).status_code == 400
    # the mask it was rendered from, as stored: grey, the input's size
    stored = client.get(f"/v1/jobs/{job_id}/mask", headers=AUTH_A)
    assert stored.status_code == 200
    assert stored.mimetype == "image/png"
    assert np.array_equal(np.asarray(opened(stored.get_data())), corrected_mask())
    assert client.get(f"/v1/jobs/{job_id}/mask?version=1", headers=AUTH_A).status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/mask", headers=AUTH_B).status_code == 404


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"bg_color": "#ff0000", "canvas": "200x200"},
        {"crop": True, "margin": 4},
        {"shadow": True},
    ],
    ids=["plain", "bg_color+canvas", "crop+margin", "shadow"],
)
def test_the_models_own_mask_gives_back_version_1_byte_for_byte(
    client: FlaskClient, worker: WorkerProcess, options: dict[str, Any]
) -> None:
    # the model's mask of the photo is a mask_only job's result; sent as the correction
    # of a job with other options, it takes the model mask's place in the same path
    model_mask = result(client, submit(client, {"mask_only": True})["id"]).get_data()
    job_id = submit(client, options)["id"]
    assert put_mask(client, job_id, model_mask).status_code == 202
    assert settled(client, job_id)["result"]["version"] == 2
    assert result(client, job_id).get_data() == result(client, job_id, 1).get_data()


def test_masks_of_other_sizes_are_scaled_like_the_models(
    client: FlaskClient, worker: WorkerProcess
) -> None:
    job_id = submit(client, {"mask_only": True})["id"]
    for version, size in ((2, (320, 320)), (3, (48, 36)), (4, (192, 144))):
        assert put_mask(client, job_id, png(corrected_mask(size))).status_code == 202
        job = settled(client, job_id)
        assert job["result"]["version"] == version, job["correction"]
        got = np.asarray(opened(result(client, job_id).get_data()))
        assert got.shape == (SIZE[1], SIZE[0])
        assert (got[20:50, 4:40] == 0).all()  # erased, away from the scaled edge
        assert (got[14:58, 58:86] == 255).all()  # restored
        # stored at the input's size, whatever size it was sent at
        stored = client.get(f"/v1/jobs/{job_id}/mask", headers=AUTH_A).get_data()
        assert opened(stored).size == SIZE
    versions = [client.get(f"/v1/jobs/{job_id}/mask?version={n}", headers=AUTH_A) for n in (2, 3)]
    assert [opened(v.get_data()).size for v in versions] == [SIZE, SIZE]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'cutout_corrections_total{outcome="succeeded"}' in metrics


def test_bad_masks_get_clear_codes_and_change_nothing(
    client: FlaskClient, worker: WorkerProcess
) -> None:
    job = submit(client, {})
    job_id = job["id"]
    before = result(client, job_id).get_data()
    good = png(corrected_mask())
    jpeg = io.BytesIO()
    Image.fromarray(corrected_mask()).save(jpeg, "JPEG")
    cases = [
        (b"this is not an image\n" * 4, 415, "unsupported_format"),
        (jpeg.getvalue(), 415, "unsupported_format"),
        (b"", 422, "invalid_image"),
        (good[: len(good) // 2], 422, "invalid_image"),  # truncated
        (good[:-12] + b"\0" * 12, 422, "invalid_image"),  # IEND damaged
        (png(np.zeros((72, 72), np.uint8)), 422, "mask_size_mismatch"),  # square
        (png(np.zeros((36, 96), np.uint8)), 422, "mask_size_mismatch"),  # wider
        (bomb_png(20_000, 15_000), 422, "image_too_large"),  # 300 MP declared
    ]
    for data, status, code in cases:
        answer = put_mask(client, job_id, data)
        assert answer.status_code == status, (code, answer.get_data(as_text=True))
        problem = answer.get_json(force=True)
        assert problem["code"] == code
        assert problem["field"] == "mask"
        assert problem["detail"].startswith("the mask")
    multipart = client.put(
        f"/v1/jobs/{job_id}/mask",
        data={"image": (io.BytesIO(good), "m.png")},
        content_type="multipart/form-data",
        headers=AUTH_A,
    )
    assert multipart.status_code == 400
    assert multipart.get_json()["field"] == "mask"
    text = client.put(
        f"/v1/jobs/{job_id}/mask", data=good, content_type="text/plain", headers=AUTH_A
    )
    assert text.status_code == 400
    after = job_of(client, job_id)
    assert after["correction"] is None
    assert after["result"] == job["result"]
    assert result(client, job_id).get_data() == before


def test_only_a_succeeded_job_of_the_tenant_can_be_corrected(
    client: FlaskClient, worker: WorkerProcess, images: ImageServer
) -> None:
    job_id = submit(client, {})["id"]
    mask = png(corrected_mask())
    # another tenant's job is not there at all
    assert put_mask(client, job_id, mask, auth=AUTH_B).status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/result?version=1", headers=AUTH_B).status_code == 404
    unknown = put_mask(client, "job_00000000000000000000000000", mask)
    assert unknown.status_code == 404
    assert job_of(client, job_id)["correction"] is None
    # a failed job has no result to correct
    url = images.add("/corrections/not-an-image", b"plain text, not a picture\n" * 8)
    response = client.post(
        "/v1/jobs", json={"image_url": url, "options": {"model": "u2netp"}}, headers=AUTH_A
    )
    failed = finished(client, response.get_json()["id"])
    assert failed["status"] == "failed"
    refused = put_mask(client, failed["id"], mask)
    assert refused.status_code == 409
    assert refused.get_json()["code"] == "job_not_succeeded"
    assert refused.get_json()["job_status"] == "failed"


def test_a_second_mask_waits_for_the_pending_one(
    client: FlaskClient, worker: WorkerProcess, store: Any
) -> None:
    job_id = submit(client, {"mask_only": True})["id"]
    records = CorrectionRecords.from_store(store)
    pending: dict[str, Any] = {"id": "cor_pending", "status": "pending"}
    pending["requested_at"] = "2026-01-01T00:00:00Z"
    pending.update(finished_at=None, error=None, mask="x", requested=time.time())
    assert records.begin(job_id, "a", pending, stale_after=600).outcome == "ok"
    busy = put_mask(client, job_id, png(corrected_mask()))
    assert busy.status_code == 409
    assert busy.get_json()["code"] == "correction_pending"
    assert busy.headers["Retry-After"]
    # a pending correction long past any run's time (its message lost) blocks no more
    store.update_job(job_id, correction={**pending, "version": 2, "requested": 1.0})
    assert put_mask(client, job_id, png(corrected_mask())).status_code == 202
    job = settled(client, job_id)
    assert (job["correction"]["status"], job["result"]["version"]) == ("succeeded", 2)
    # the lost correction's late run finds another correction and changes nothing
    assert not records.finish(job_id, "a", "cor_pending", {"key": "x"}, pending)
    assert job_of(client, job_id)["result"]["version"] == 2
    # the tenant's index of corrected jobs has it (what a corrections export pages through)
    since = time.time() - 3600
    assert job_id in [job for job, _ in records.corrected("a", since, 0, 10_000)]
    assert job_id not in [job for job, _ in records.corrected("b", since, 0, 10_000)]


def test_an_idempotent_replay_makes_no_new_version(
    client: FlaskClient, worker: WorkerProcess
) -> None:
    job_id = submit(client, {"mask_only": True})["id"]
    mask = png(corrected_mask())
    first = put_mask(client, job_id, mask, key="fix-1")
    assert first.status_code == 202
    job = settled(client, job_id)
    assert job["result"]["version"] == 2
    again = put_mask(client, job_id, mask, key="fix-1")
    assert again.status_code == 202
    assert again.get_json()["correction"] == job["correction"]
    assert settled(client, job_id)["result"]["version"] == 2
    other = put_mask(client, job_id, png(corrected_mask((48, 36))), key="fix-1")
    assert other.status_code == 422
    assert other.get_json()["code"] == "idempotency_key_reused"


def test_job_corrected_is_signed_and_sent_once_per_version(
    client: FlaskClient, worker: WorkerProcess, receiver: Receiver
) -> None:
    secret = client.get("/v1/webhooks/secret", headers=AUTH_A).get_json()["secret"]
    hook = receiver.url("/corrected-hook")
    job_id = submit(client, {"mask_only": True}, webhook=hook)["id"]

    def events(kind: str) -> list[dict[str, Any]]:
        found = [Webhook(secret).verify(d.body, d.headers) for d in receiver.to("/corrected-hook")]
        return [event for event in found if event["type"] == kind]

    wait_for(lambda: events("job.succeeded"), 60, 0.1)
    for count in (1, 2):
        assert put_mask(client, job_id, png(corrected_mask())).status_code == 202
        settled(client, job_id)
        wait_for(lambda n=count: len(events("job.corrected")) >= n, 60, 0.1)  # type: ignore[misc]
    corrected = events("job.corrected")
    assert [e["data"]["result"]["version"] for e in corrected] == [2, 3]
    assert all(e["data"]["result"]["corrected"] for e in corrected)
    assert len(events("job.succeeded")) == 1
    ids = [d.headers["webhook-id"] for d in receiver.to("/corrected-hook")]
    assert len(set(ids)) == len(ids) == 3
    assert job_of(client, job_id)["webhook"]["event"] == "job.corrected"


def test_a_job_whose_input_is_gone_is_refused_at_once(
    client: FlaskClient, worker: WorkerProcess, storage: Any
) -> None:
    job_id = submit(client, {})["id"]
    storage.delete_prefix(input_key("a", job_id))  # as DELETE /v1/jobs/{id} does
    refused = put_mask(client, job_id, png(corrected_mask()))
    assert refused.status_code == 422
    assert refused.get_json()["code"] == "upload_not_found"
    assert job_of(client, job_id)["correction"] is None


def test_a_failed_correction_keeps_the_previous_version(
    client: FlaskClient, worker: WorkerProcess, images: ImageServer, store: Any
) -> None:
    backdrop = png(np.full((72, 96, 3), 200, np.uint8))
    job_id = submit(client, {"bg_image_url": images.add("/corrections/gone.png", backdrop)})["id"]
    before = result(client, job_id).get_data()
    del images.files["/corrections/gone.png"]  # the background's URL answers 404 now
    assert put_mask(client, job_id, png(corrected_mask())).status_code == 202
    job = settled(client, job_id)
    assert job["correction"]["status"] == "failed"
    assert job["correction"]["error"]["code"] == "url_fetch_failed"
    assert (job["status"], job["result"]["version"], job["result"]["corrected"]) == (
        "succeeded",
        1,
        False,
    )
    corrected = CorrectionRecords.from_store(store).corrected("a", 0, 0, 100_000)
    assert job_id not in [job for job, _ in corrected]  # a failed correction is not one
    assert result(client, job_id).get_data() == before
    # a finished correction counts in /metrics by outcome
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'cutout_corrections_total{outcome="failed"}' in metrics


def test_batch_jobs_are_corrected_and_the_zip_serves_the_newest(
    client: FlaskClient, worker: WorkerProcess, images: ImageServer
) -> None:
    items = [{"image_url": images.add(f"/corrections/b{i}.png", photo(SIZE, i))} for i in (0, 1)]
    response = client.post(
        "/v1/batches",
        json={"items": items, "options": {"model": "u2netp", "mask_only": True}},
        headers=AUTH_A,
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    batch_id = response.get_json()["id"]
    wait_for(
        lambda: (
            client.get(f"/v1/batches/{batch_id}", headers=AUTH_A).get_json()["status"]
            == "completed"
        ),
        180,
        0.2,
    )
    jobs = client.get(f"/v1/batches/{batch_id}/jobs", headers=AUTH_A).get_json()["items"]
    fixed, kept = jobs[0]["id"], jobs[1]["id"]
    # the URL answers no more: the worker kept the input it fetched
    images.files.clear()
    assert put_mask(client, fixed, png(corrected_mask())).status_code == 202
    assert settled(client, fixed)["result"]["version"] == 2
    archive = zipfile.ZipFile(
        io.BytesIO(client.get(f"/v1/batches/{batch_id}/results.zip", headers=AUTH_A).get_data())
    )
    rows = {
        r["job_id"]: r for r in csv.DictReader(io.StringIO(archive.read("manifest.csv").decode()))
    }
    assert (rows[fixed]["version"], rows[kept]["version"]) == ("2", "1")
    assert archive.read(rows[fixed]["file"]) == result(client, fixed).get_data()
    assert archive.read(rows[fixed]["file"]) != result(client, fixed, 1).get_data()
    assert np.array_equal(np.asarray(opened(archive.read(rows[fixed]["file"]))), corrected_mask())
    assert archive.read(rows[kept]["file"]) == result(client, kept).get_data()
