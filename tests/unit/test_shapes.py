"""The shapes of shared/contract/shapes: stored records → public JSON, the strict OpenAPI schemas
generated from them, and the conformance check that holds every API response to them."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from flask import Flask, Response

from api.openapi import doc
from shared.contract.shapes import BatchRecord, JobRecord, decode, encode, public_batch, public_job
from shared.contract.shapes.openapi import component_schemas
from tests import openapi_conformance

RECORD: dict[str, Any] = {
    "id": "job_0000000000000000000000000a",
    "tenant": "a",
    "status": "succeeded",
    "created_at": "2026-01-01T00:00:00Z",
    "started_at": None,
    "finished_at": "2026-01-01T00:00:02Z",
    "options": {"model": "u2netp", "format": "png"},
    "result": {
        "url": "/v1/jobs/job_0000000000000000000000000a/result",
        "key": "outputs/a/job_0000000000000000000000000a/result.png",
        "content_type": "image/png",
        "width": 4,
        "height": 3,
        "bytes": 120,
    },
    "error": None,
    "attempts": 1,
    "metadata": {"b": [1, 2.5, None], "a": "z"},
    "webhook": {"url": "https://hooks.example.com/x", "status": "pending", "attempts": 0},
    "input_key": "inputs/a/job_0000000000000000000000000a/source",
    "source": {"kind": "upload"},
    "queue": "interactive",
}


def test_public_job_is_the_documented_object_in_its_order() -> None:
    stored = decode(encode(RECORD))
    assert stored["attempts"] == 1
    assert stored["started_at"] is None
    text = json.dumps(public_job(stored))
    assert text == (
        '{"id": "job_0000000000000000000000000a", "status": "succeeded", '
        '"created_at": "2026-01-01T00:00:00Z", "started_at": null, '
        '"finished_at": "2026-01-01T00:00:02Z", "options": {"model": "u2netp", "format": "png"}, '
        '"result": {"url": "/v1/jobs/job_0000000000000000000000000a/result", '
        '"content_type": "image/png", "width": 4, "height": 3, "bytes": 120, '
        '"subject": null, "foreground": null, "quality": null, "version": 1, '
        '"corrected": false}, "error": null, "attempts": 1, '
        '"batch_id": null, "metadata": {"b": [1, 2.5, null], "a": "z"}, '
        '"webhook": {"url": "https://hooks.example.com/x", "status": "pending", "attempts": 0}, '
        '"correction": null}'
    )
    queued = {"id": RECORD["id"], "status": "queued", "item_index": 0, "batch_id": "bat_x"}
    out = public_job(queued)
    assert list(out)[-1] == "item_index"
    assert out["item_index"] == 0
    assert (out["options"], out["metadata"], out["attempts"], out["result"]) == ({}, {}, 0, None)
    hook = {
        **RECORD["webhook"],
        "id": "msg_1",
        "event": "job.succeeded",
        "last_status": 500,
        "last_error": "HTTP 500",
    }
    assert public_job({**RECORD, "webhook": hook})["webhook"] == hook


def test_public_shapes_refuse_what_they_do_not_declare() -> None:
    with pytest.raises(pydantic.ValidationError):
        public_job({**RECORD, "error": {"code": "x", "message": "y", "trace": "..."}})
    with pytest.raises(pydantic.ValidationError):
        public_job({**RECORD, "status": "done"})


def test_public_batch() -> None:
    counts = dict.fromkeys(("total", "queued", "processing", "succeeded", "failed", "canceled"), 0)
    batch = {
        "id": "bat_0000000000000000000000000a",
        "tenant": "a",
        "enqueued": "0",
        "counts": counts,
    }
    assert public_batch(batch) == {
        "id": "bat_0000000000000000000000000a",
        "status": "running",
        "created_at": None,
        "finished_at": None,
        "counts": counts,
        "options": {},
        "metadata": {},
        "webhook": None,
    }


def test_response_schemas_are_complete_and_strict() -> None:
    schemas = component_schemas()
    for name in ("Job", "Batch", "Webhook", "JobResult", "JobError", "BatchCounts", "JobPage"):
        assert schemas[name]["additionalProperties"] is False, name
    assert {"options", "metadata", "webhook"} <= set(schemas["Batch"]["properties"])
    assert {"id", "event", "last_status", "last_error"} <= set(schemas["Webhook"]["properties"])
    assert "item_index" in schemas["Job"]["properties"]
    assert "item_index" not in schemas["Job"]["required"]


def bad_app(body: dict[str, Any]) -> Flask:
    app = Flask(__name__)

    @app.get("/v1/jobs/<job_id>")
    @doc(summary="a job", responses={200: {"description": "the job", "schema": "Job"}})
    def job(job_id: str) -> Response:
        return Response(json.dumps(body), mimetype="application/json")

    @app.get("/v1/image")
    @doc(summary="an image", responses={200: {"description": "png", "content_type": "image/*"}})
    def image() -> Response:
        return Response(b"\x89PNG", mimetype="image/png")

    @app.get("/v1/missing")
    @doc(summary="gone", responses={404: {"description": "not_found", "problem": True}})
    def missing() -> Response:
        return Response(json.dumps({"oops": 1}), status=404, mimetype="application/json")

    from api import openapi

    app.register_blueprint(openapi.bp)
    return app


def test_conformance_check_catches_a_nonconforming_response() -> None:
    good = public_job(RECORD)
    with openapi_conformance.caught() as found:
        assert bad_app(good).test_client().get(f"/v1/jobs/{RECORD['id']}").status_code == 200
        assert bad_app(good).test_client().get("/v1/image").status_code == 200
    assert found == []
    with openapi_conformance.caught() as found:
        bad_app({**good, "surprise": 1}).test_client().get(f"/v1/jobs/{RECORD['id']}")
        bad_app({**good, "attempts": "1"}).test_client().get(f"/v1/jobs/{RECORD['id']}")
    assert len(found) == 2, found
    assert "surprise" in found[0]
    assert "attempts" in found[1]


def test_schemas_markdown_has_a_table_per_shape() -> None:
    from shared.contract.shapes.markdown import ORDER, shapes_markdown

    text = shapes_markdown()
    for name in ORDER:
        assert f"### {name}\n" in text
    assert "| `last_error` | string or null | no |" in text
    assert "| `item_index` | integer | no |" in text


def test_conformance_check_reads_live_servers_through_urllib() -> None:
    import threading
    import urllib.error
    import urllib.request

    from werkzeug.serving import make_server

    body = {**public_job(RECORD), "surprise": 1}
    server = make_server("127.0.0.1", 0, bad_app(body))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with openapi_conformance.caught() as found:
            with urllib.request.urlopen(f"{base}/v1/jobs/{RECORD['id']}", timeout=30) as answer:
                assert json.loads(answer.read()) == body  # the test still reads the body
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{base}/v1/missing", timeout=30)
            assert json.loads(refused.value.read()) == {"oops": 1}
            refused.value.close()
    finally:
        server.shutdown()
        server.server_close()
    assert len(found) == 2, found
    assert "surprise" in found[0]
    assert "/v1/missing → 404" in found[1]


def test_webhook_event_bodies_match_the_documented_webhooks() -> None:
    from jsonschema import Draft202012Validator

    from api import openapi
    from shared.net.webhooks import event_body

    app = Flask(__name__)
    app.register_blueprint(openapi.bp)
    with app.app_context():
        document = json.loads(json.dumps(openapi.build_document(app)))
    schema = document["webhooks"]["job.succeeded"]["post"]["requestBody"]["content"]
    root = {"components": document["components"], **schema["application/json"]["schema"]}
    validator = Draft202012Validator(root)
    body = json.loads(event_body("job.succeeded", public_job(RECORD)))
    assert list(validator.iter_errors(body)) == []
    assert list(validator.iter_errors({**body, "type": "batch.completed"}))


def test_stored_records_read_back_typed() -> None:
    """What the stores return: the record as written, typed, read back from its hash."""
    record = JobRecord.queued(
        id="job_01hzzzzzzzzzzzzzzzzzzzzzzz",
        tenant="t1",
        created_at="2026-01-02T03:04:05.678Z",
        options={"model": "u2netp", "format": "png"},
        batch_id=None,
        metadata={"sku": "A1"},
        webhook={"url": "https://hooks.example.com/", "status": "pending", "attempts": 0},
        input_key=None,
        source={"kind": "url", "url": "https://images.example.com/a.jpg"},
        queue="interactive",
        model_sha256=None,
    )
    back = JobRecord.from_hash(encode(record.stored()))
    assert back == record
    assert (back.status, back.attempts, back.result, back.started_at) == ("queued", 0, None, None)
    assert back.options == {"model": "u2netp", "format": "png"}
    # a member the model does not declare is kept as it was stored
    batch = BatchRecord.from_hash({"id": "bat_1", "status": "running", "enqueued": "20", "x": "1"})
    assert (batch.enqueued, batch.model_extra) == (20, {"x": "1"})
    with pytest.raises(pydantic.ValidationError):
        JobRecord.from_hash({"id": "job_1", "status": "done"})
