"""Registering custom models through a real API: bounded checks, record limits, quotas.

Real parts: the session's redis-server (this module's own database) and SeaweedFS, a
real `cutout api` (gunicorn) with API keys and small limits. Issue 29: a junk file took
the API to 1.3 GB (10 MB) and 7.9 GB (60 MB); a record sent as a file part had no limit
(three 100 MB records grew Redis by 290 MB); a deeply nested record answered 500; models
that can never load were registered; a tenant had no limit on its models or their bytes.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from shared.errors import Unavailable
from shared.onnx.modelfile import sha256_of
from shared.s3.storage import Storage
from shared.stores.models import ModelRegistry, reservations_key, scope_key, tenant_scope
from testkit import custom_graphs
from testkit import registration_graphs as graphs
from tests.integration.conftest import ApiProcess, http, multipart, running_api

TENANTS = ("alice", "bob", "carol", "dave", "erin")
KEYS = {t: f"key-{t}-0123456789" for t in TENANTS}
MAX_MODELS = 3
MAX_STORAGE = 300_000
MAX_MODEL_BYTES = 20_000_000


@pytest.fixture(scope="module")
def api(service_env: dict[str, str], module_db: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    env = dict(
        service_env,
        CUTOUT_REDIS_URL=module_db,
        CUTOUT_API_KEYS=",".join(f"{t}:{k}" for t, k in KEYS.items()),
        CUTOUT_MAX_MODELS_PER_TENANT=str(MAX_MODELS),
        CUTOUT_MAX_MODEL_STORAGE_BYTES=str(MAX_STORAGE),
        CUTOUT_MAX_MODEL_BYTES=str(MAX_MODEL_BYTES),
    )
    with running_api(env, tmp_path_factory.mktemp("api-quotas") / "api.log") as api:
        yield api


def _auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


def record_of(name: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "base": {"name": "u2netp"}, "sha256": sha256_of(data)}


def push(
    api: ApiProcess,
    tenant: str,
    name: str,
    data: bytes,
    *,
    record: bytes | None = None,
    record_as_field: bool = False,
) -> tuple[int, dict[str, Any]]:
    raw = record if record is not None else json.dumps(record_of(name, data)).encode()
    fields = {"record": raw.decode()} if record_as_field else {}
    files = {"file": ("model.onnx", data, "application/octet-stream")}
    if not record_as_field:
        files["record"] = ("record.json", raw, "application/json")
    body, ctype = multipart(fields, files)
    status, _, answer = http(
        "POST", api.url + "/v1/models", body, {**_auth(tenant), "Content-Type": ctype}
    )
    return status, json.loads(answer or b"{}")


def names(api: ApiProcess, tenant: str) -> list[str]:
    status, _, raw = http("GET", api.url + "/v1/models", None, _auth(tenant))
    assert status == 200
    return [m["name"] for m in json.loads(raw)["models"] if m["kind"] == "custom"]


def peak_rss(api: ApiProcess) -> int:
    """The largest peak resident set (VmHWM, bytes) among the API's processes."""
    peaks = []
    for proc in [psutil.Process(api.proc.pid), *psutil.Process(api.proc.pid).children(True)]:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except FileNotFoundError:  # exited since the listing
            continue
        # a zombie (exited, not yet reaped) has no memory lines
        lines = [x for x in status.splitlines() if x.startswith("VmHWM:")]
        peaks.extend(int(line.split()[1]) * 1024 for line in lines)
    return max(peaks)


@pytest.mark.parametrize("in_graph", [False, True], ids=["top-level", "as-the-graph"])
def test_a_junk_file_is_refused_without_taking_the_api_s_memory(
    api: ApiProcess, in_graph: bool
) -> None:
    before = peak_rss(api)
    status, problem = push(api, "alice", "junk", graphs.junk(10_000_000, in_graph=in_graph))
    assert (status, problem["code"]) == (422, "invalid_model"), problem
    assert "fields" in problem["detail"]
    # the old check took 1.3 GB for this file; the upload itself is spooled to disk
    assert peak_rss(api) - before < 100_000_000
    assert "junk" not in names(api, "alice")


def test_a_file_over_the_model_limit_is_413(api: ApiProcess) -> None:
    status, problem = push(api, "alice", "big", graphs.mean_mask("big", pad=MAX_MODEL_BYTES))
    assert (status, problem["code"]) == (413, "payload_too_large"), problem


@pytest.mark.parametrize("as_field", [False, True], ids=["file-part", "form-field"])
def test_a_record_over_64_kib_is_refused_and_not_stored(
    api: ApiProcess, module_db: str, as_field: bool
) -> None:
    data = graphs.mean_mask("record")
    record = {**record_of("fat", data), "notes": "x" * 100_000}
    status, problem = push(
        api, "alice", "fat", data, record=json.dumps(record).encode(), record_as_field=as_field
    )
    assert (status, problem["code"]) == (413, "payload_too_large"), problem
    assert problem.get("field") == "record"
    client = redis.Redis.from_url(module_db)
    assert client.hget(scope_key(tenant_scope("alice")), "fat") is None


@pytest.mark.parametrize("as_field", [False, True], ids=["file-part", "form-field"])
def test_a_deeply_nested_record_is_422_not_500(api: ApiProcess, as_field: bool) -> None:
    data = graphs.mean_mask("deep")
    deep = b'{"name": "deep", "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    status, problem = push(api, "alice", "deep", data, record=deep, record_as_field=as_field)
    assert (status, problem["code"]) == (422, "invalid_model"), problem
    assert "nests deeper than 32" in problem["detail"]
    assert problem.get("field") == "record"


def test_a_record_that_is_not_unicode_is_refused_and_not_stored(
    api: ApiProcess, module_db: str
) -> None:
    """A lone surrogate escape in the record: Redis's cjson cannot read it back, so it
    answered 503 after storing the record, whose bytes then escaped the quota."""
    data = graphs.mean_mask("lone")
    raw = json.dumps(record_of("lone", data))[:-1] + ', "note": "\\ud800"}'
    status, problem = push(api, "alice", "lone", data, record=raw.encode())
    assert (status, problem["code"]) == (422, "invalid_model"), problem
    assert "not valid Unicode" in problem["detail"]
    client = redis.Redis.from_url(module_db)
    assert client.hget(scope_key(tenant_scope("alice")), "lone") is None


def test_the_registry_writes_nothing_for_a_record_redis_cannot_read(
    module_db: str, storage: Storage
) -> None:
    """Past the API's check (a caller of the registry that skips it): the commit script
    refuses before writing, so no record is left that the quota cannot count."""
    client = redis.Redis.from_url(module_db, decode_responses=True)
    registry = ModelRegistry(client, storage)
    data = graphs.mean_mask("unreadable")
    record = {**record_of("unreadable", data), "note": "\ud800", "bytes": len(data)}
    scope = tenant_scope("unreadable-tenant")
    with pytest.raises(Unavailable):
        registry.register(scope, "unreadable", data, record, max_models=3, max_bytes=10**6)
    assert client.hget(scope_key(scope), "unreadable") is None
    assert client.zcard(reservations_key(scope)) == 0


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (graphs.foreign_domain("evil.ops"), "'evil.ops'"),
        (graphs.foreign_domain("evil.ops", depth=2), "'evil.ops'"),
        (graphs.external_data("initializer", "/etc/passwd"), "external data"),
        (graphs.external_data("constant", "../../../etc/passwd"), "external data"),
        (custom_graphs.unknown_operator(), "'NoSuchOp'"),
    ],
    ids=[
        "custom-domain",
        "custom-domain-in-a-subgraph",
        "external-data",
        "external-constant",
        "unknown-operator",
    ],
)
def test_models_that_cannot_load_are_refused(api: ApiProcess, data: bytes, says: str) -> None:
    status, problem = push(api, "alice", "cannot-load", data)
    assert (status, problem["code"]) == (422, "invalid_model"), problem
    assert says in problem["detail"]


def test_the_model_count_quota(api: ApiProcess) -> None:
    for n in range(MAX_MODELS):
        status, body = push(api, "bob", f"m{n}", graphs.mean_mask(f"bob{n}"))
        assert status == 201, body
    status, problem = push(api, "bob", "one-more", graphs.mean_mask("bob-more"))
    assert (status, problem["code"]) == (422, "model_quota_exceeded"), problem
    assert "CUTOUT_MAX_MODELS_PER_TENANT" in problem["detail"]
    # registering a name again replaces it: still three, not four
    status, body = push(api, "bob", "m0", graphs.mean_mask("bob0-v2"))
    assert status == 201, body
    assert sorted(names(api, "bob")) == ["m0", "m1", "m2"]
    # another tenant's quota is its own
    status, body = push(api, "alice", "alice-own", graphs.mean_mask("alice-own"))
    assert status == 201, body
    # a deleted model frees its place
    status, _, _ = http("DELETE", api.url + "/v1/models/m1", None, _auth("bob"))
    assert status == 204
    status, body = push(api, "bob", "one-more", graphs.mean_mask("bob-more"))
    assert status == 201, body


def test_the_stored_bytes_quota(api: ApiProcess) -> None:
    size = 120_000  # two fit in 300,000 bytes, a third does not
    for n in range(2):
        status, body = push(api, "carol", f"b{n}", graphs.mean_mask(f"carol{n}", pad=size))
        assert status == 201, body
    status, problem = push(api, "carol", "b2", graphs.mean_mask("carol2", pad=size))
    assert (status, problem["code"]) == (422, "model_quota_exceeded"), problem
    assert "CUTOUT_MAX_MODEL_STORAGE_BYTES" in problem["detail"]
    # a new version of a model counts in place of the old one, not beside it
    status, body = push(api, "carol", "b1", graphs.mean_mask("carol1-v2", pad=size + 1000))
    assert status == 201, body


@pytest.mark.parametrize("tenant", ["dave", "erin"])
def test_concurrent_uploads_cannot_slip_past_the_quota(api: ApiProcess, tenant: str) -> None:
    """Six uploads at once with room for three: exactly three are registered."""
    models = [(f"c{n}", graphs.mean_mask(f"{tenant}{n}", pad=20_000)) for n in range(6)]
    with ThreadPoolExecutor(len(models)) as pool:
        answers = list(pool.map(lambda m: push(api, tenant, m[0], m[1]), models))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] * MAX_MODELS + [422] * (len(models) - MAX_MODELS), answers
    assert len(names(api, tenant)) == MAX_MODELS


def test_a_real_model_is_registered_without_a_copy_in_the_api(
    service_env: dict[str, str],
    module_db: str,
    model_home: Path,
    tmp_path: Path,
) -> None:
    """u2net's 176 MB file under the default limits: the API holds no copy of it (the old
    route read it whole: +180 MB of peak RSS). werkzeug spools the upload to a file; the
    check reads its structure through an mmap; the hash and the bucket read it in chunks."""
    data = (model_home / "u2net.onnx").read_bytes()
    record = {"name": "real", "base": {"name": "u2net"}, "sha256": sha256_of(data)}
    body, ctype = multipart(
        {},
        {
            "record": ("record.json", json.dumps(record).encode(), "application/json"),
            "file": ("u2net.onnx", data, "application/octet-stream"),
        },
    )
    del data
    env = dict(service_env, CUTOUT_REDIS_URL=module_db, CUTOUT_API_KEYS=f"frank:{KEYS['alice']}")
    with running_api(env, tmp_path / "api.log") as api:
        before = peak_rss(api)
        status, _, answer = http(
            "POST",
            api.url + "/v1/models",
            body,
            {"Authorization": f"Bearer {KEYS['alice']}", "Content-Type": ctype},
        )
        assert status == 201, answer
        assert peak_rss(api) - before < 60_000_000
