"""Pure parts of the security work: rate-limit arithmetic, idempotency fingerprints, the
frame-walking guard of the decoder, and the bad-input corpus checked against the intake
and decode functions directly (the integration tests send it through the real service).
No servers.
"""

from __future__ import annotations

import io
import json
import warnings

import pytest
from flask import Flask
from PIL import GifImagePlugin, TiffImagePlugin

from api.idempotency import _KEY_RE, redis_key, request_fingerprint
from api.intake import check_image
from api.ratelimit import Decision
from shared.contract.settings import load_settings
from shared.errors import CutoutError
from tests.corpus.make import BY_NAME, CASES, MAX_PIXELS, MAX_SIDE, multipart_body
from worker.engine.imageio import decode_image

# -- rate limit ---------------------------------------------------------------------------


def test_decision_headers_when_allowed() -> None:
    decision = Decision(allowed=True, tokens=149.6, rate=50.0, burst=200)
    assert decision.headers() == {
        "RateLimit-Limit": "200",
        "RateLimit-Remaining": "149",
        "RateLimit-Reset": "2",  # 50.4 tokens missing at 50/s
        "RateLimit-Policy": "200;w=4",
    }


def test_decision_when_empty_says_when_to_retry() -> None:
    decision = Decision(allowed=False, tokens=0.25, rate=0.5, burst=3)
    assert decision.remaining == 0
    assert decision.retry_after == 2  # 0.75 of a token at 0.5/s
    assert decision.reset == 6
    # never "retry after 0": a client would spin
    assert Decision(False, 0.999, 1000.0, 10).retry_after == 1


# -- idempotency ----------------------------------------------------------------------------


@pytest.fixture
def flask_app() -> Flask:
    return Flask(__name__)


def fingerprint(app: Flask, tenant: str = "a", path: str = "/v1/jobs", **kwargs: object) -> str:
    with app.test_request_context(path, method="POST", **kwargs):  # type: ignore[arg-type]
        from flask import request

        return request_fingerprint(request, tenant)


def test_json_fingerprint_ignores_key_order_and_whitespace(flask_app: Flask) -> None:
    one = fingerprint(
        flask_app,
        data=b'{"image_url": "http://x/a.png", "options": {"model": "u2netp"}}',
        content_type="application/json",
    )
    two = fingerprint(
        flask_app,
        data=json.dumps({"options": {"model": "u2netp"}, "image_url": "http://x/a.png"}, indent=2),
        content_type="application/json",
    )
    other = fingerprint(
        flask_app, data=b'{"image_url": "http://x/b.png"}', content_type="application/json"
    )
    assert one == two != other
    # the same body on another path, or for another tenant, is another request
    assert one != fingerprint(
        flask_app,
        path="/v1/batches",
        data=b'{"image_url": "http://x/a.png", "options": {"model": "u2netp"}}',
        content_type="application/json",
    )
    assert one != fingerprint(
        flask_app,
        tenant="b",
        data=json.dumps({"image_url": "http://x/a.png", "options": {"model": "u2netp"}}),
        content_type="application/json",
    )


def test_multipart_fingerprint_ignores_the_boundary(flask_app: Flask) -> None:
    fields = {"model": "u2netp", "format": "webp"}
    files = {"image": ("a.png", b"\x89PNG-bytes", "image/png")}
    first, ctype1 = multipart_body(fields, files, boundary="aaaa1111")
    second, ctype2 = multipart_body(dict(reversed(fields.items())), files, boundary="bbbb2222")
    assert first != second
    one = fingerprint(flask_app, data=first, content_type=ctype1)
    assert one == fingerprint(flask_app, data=second, content_type=ctype2)
    changed, ctype3 = multipart_body(
        fields, {"image": ("a.png", b"\x89PNG-other", "image/png")}, boundary="c"
    )
    assert one != fingerprint(flask_app, data=changed, content_type=ctype3)
    option, ctype4 = multipart_body({"model": "u2net", "format": "webp"}, files, boundary="d")
    assert one != fingerprint(flask_app, data=option, content_type=ctype4)


def test_multipart_file_stays_readable_after_fingerprinting(flask_app: Flask) -> None:
    body, ctype = multipart_body({}, {"image": ("a.png", b"0123456789" * 1000, "image/png")})
    with flask_app.test_request_context("/v1/jobs", method="POST", data=body, content_type=ctype):
        from flask import request

        request_fingerprint(request, "a")
        assert request.files["image"].stream.read() == b"0123456789" * 1000


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("abc", True),
        ("9f1c-uuid-like", True),
        ("x" * 255, True),
        ("", False),
        ("x" * 256, False),
        ("has space", False),
        ("tab\t", False),
        ("é", False),
    ],
)
def test_idempotency_key_shape(key: str, ok: bool) -> None:
    assert bool(_KEY_RE.fullmatch(key)) is ok


def test_idempotency_redis_key_is_per_tenant_path_and_hashed() -> None:
    assert redis_key("a", "/v1/jobs", "k") != redis_key("b", "/v1/jobs", "k")
    assert redis_key("a", "/v1/jobs", "k") != redis_key("a", "/v1/batches", "k")
    assert "secret-looking-key" not in redis_key("a", "/v1/jobs", "secret-looking-key")


# -- frames: only the first is ever touched -------------------------------------------------


@pytest.mark.parametrize(
    ("case", "plugin"),
    [
        ("gif_5000_frames", GifImagePlugin.GifImageFile),
        ("tiff_1000_pages", TiffImagePlugin.TiffImageFile),
    ],
)
def test_decode_never_walks_the_frames(
    case: str, plugin: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    original = plugin._seek  # type: ignore[attr-defined]

    def spy(self: object, frame: int, *args: object, **kwargs: object) -> object:
        seen.append(frame)
        return original(self, frame, *args, **kwargs)

    monkeypatch.setattr(plugin, "_seek", spy)
    image = decode_image(BY_NAME[case].build())
    assert image.size in ((24, 16), (16, 12))
    assert max(seen, default=0) == 0, f"decode seeked to frames {sorted(set(seen))[:10]}..."


# -- the corpus, against the intake and decode functions ------------------------------------


def test_corpus_is_large_and_covers_every_outcome() -> None:
    assert len(CASES) >= 40
    stages = {(c.code is None, c.stage) for c in CASES}
    assert (True, "api") in stages
    assert (False, "api") in stages
    assert (False, "worker") in stages
    assert {c.code for c in CASES} >= {
        None,
        "invalid_image",
        "unsupported_format",
        "image_too_large",
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_corpus_case_outcome_in_process(case) -> None:  # type: ignore[no-untyped-def]
    """What intake and decoding say about each case matches its stated outcome."""
    settings = load_settings({}, max_pixels=MAX_PIXELS, max_side=MAX_SIDE)
    data = case.build()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a hostile file must not even warn its way through
        try:
            check_image(data, settings)
            intake = None
        except CutoutError as exc:
            intake = exc.code
        if case.stage == "api" and case.code is not None:
            assert intake == case.code
            # the worker's decoder says the same of the bytes (direct uploads reach it
            # without the API's look)
            with pytest.raises(CutoutError) as caught:
                decode_image(data, max_pixels=MAX_PIXELS, max_side=MAX_SIDE)
            assert caught.value.code == case.code
            return
        assert intake is None, f"refused at intake with {intake}"
        try:
            image = decode_image(data, max_pixels=MAX_PIXELS, max_side=MAX_SIDE)
            decoded = None
        except CutoutError as exc:
            decoded = exc.code
        assert decoded == case.code
        if decoded is None:
            assert min(image.size) >= 1
            image.tobytes()  # the pixels are really there


def test_exif_rotated_case_is_upright_after_decode() -> None:
    image = decode_image(BY_NAME["exif_rotated_6"].build())
    assert image.size == (48, 80)


def test_corpus_writes_files(tmp_path: io.BytesIO) -> None:  # type: ignore[type-arg]
    from tests.corpus.make import write

    small = tuple(c for c in CASES if c.name in ("empty", "one_pixel", "svg"))
    paths = write(tmp_path, small)  # type: ignore[arg-type]
    assert sorted(paths) == ["empty", "one_pixel", "svg"]
    assert paths["empty"].read_bytes() == b""


# -- the worker's bounds ---------------------------------------------------------------------


def test_worker_children_are_bounded_in_memory_and_time() -> None:
    """A hostile image can cost one pool child, never the machine: a child past the memory
    bound is replaced after its task, and every task has a hard time limit."""
    from worker.celery_app import create_worker_app

    settings = load_settings(
        {
            "CUTOUT_REDIS_URL": "redis://127.0.0.1:1/0",
            "CUTOUT_S3_ENDPOINT_URL": "http://127.0.0.1:1",
        }
    )
    conf = create_worker_app(settings).conf
    assert 0 < conf.worker_max_memory_per_child <= 4_000_000  # KiB
    assert conf.task_time_limit == settings.task_time_limit
    assert conf.task_soft_time_limit < conf.task_time_limit


# -- keyless mode: which Host names are loopback (api/trust.py) ---------------------------


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("localhost", True),
        ("LOCALHOST:8080", True),
        ("localhost.:8080", True),
        ("app.localhost:3000", True),
        ("127.0.0.1", True),
        ("127.1.2.3:80", True),
        ("[::1]:8080", True),
        ("[::1]", True),
        ("evil.example", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("[::ffff:10.0.0.1]:80", False),
        ("10.0.0.5:8080", False),
        ("", False),
        ("[::1", False),
    ],
)
def test_loopback_host_names(host: str, ok: bool) -> None:
    from api.trust import loopback_host

    assert loopback_host(host) is ok


def test_request_corpus_keeps_the_inputs_that_once_answered_500() -> None:
    """Issue 17's inputs stay in the corpus (tests/integration/test_hostile_requests.py
    sends them through the app and a real gunicorn)."""
    from tests.corpus.make import DEEP, REQUEST_CASES, raw_cases

    deep_paths = {c.path for c in REQUEST_CASES if "deep" in c.name}
    assert deep_paths == {"/v1/jobs", "/v1/batches", "/v1/uploads"}
    names = {c.name for c in REQUEST_CASES}
    assert {"jobs_form_metadata_deep", "batches_form_metadata_deep"} <= names
    assert {
        "jobs_image_url_surrogate",
        "jobs_webhook_url_surrogate",
        "batches_item_image_url_surrogate",
        "batches_webhook_url_surrogate",
    } <= names
    assert DEEP >= 100_000
    assert all(c.status < 500 for c in REQUEST_CASES)
    raw = {c.name: c for c in raw_cases(1000)}
    assert {c.status for c in raw.values()} >= {400, 413, 414, 431}
    assert raw["chunked_json_over_limit"].code == "payload_too_large"
