"""A JSON batch's items inherit the batch's options, whatever their type: the API alone
(Flask test client) on real Redis and SeaweedFS, no worker (what it stores is checked).

Found in the review of issue 28's typed options: an item with options of its own was
refused (422 invalid_option on roi or crop_margin) when the batch set roi or crop_margin,
because the batch's typed values were handed back to the parsers as plain tuples.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from testkit.batch import AUTH_A, make_app, photo
from tests.conftest import RedisDatabases

GOOD = {"image_url": "https://images.example.com/a.jpg"}

#: batch-level options of every typed kind, and what each item then stores
BATCH_OPTIONS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"roi": "10px 10px 50% 50%"}, {"roi": "10px 10px 50% 50%"}),
    ({"crop_margin": "5%"}, {"crop_margin": "5% 5% 5% 5%"}),
    ({"crop_margin": "10px 5%"}, {"crop_margin": "10px 5% 10px 5%"}),
    ({"bg_color": "1,2,3"}, {"bg_color": "#010203ff"}),
    ({"canvas": "100x50"}, {"canvas": "100x50"}),
    ({"scale": "50%", "position": "10% 20%"}, {"scale": 0.5, "position": "10% 20%"}),
    ({"scale": "50%"}, {"scale": 0.5, "position": "50% 50%"}),
    ({"scale": "50%", "position": "original"}, {"scale": 0.5, "position": None}),
]


@pytest.fixture(scope="module")
def api_db(redis_dbs: RedisDatabases) -> str:
    return redis_dbs.take()


@pytest.fixture
def api(api_db: str, s3_endpoint: str, s3_credentials: dict[str, str]) -> Iterator[FlaskClient]:
    client = redis.Redis.from_url(api_db, decode_responses=True)
    client.flushdb()
    app: Flask = make_app(api_db, s3_endpoint)
    yield app.test_client()
    client.close()


@pytest.mark.parametrize(("batch_options", "stored"), BATCH_OPTIONS)
def test_an_item_with_options_of_its_own_inherits_every_batch_option(
    api: FlaskClient, batch_options: dict[str, Any], stored: dict[str, Any]
) -> None:
    items = [GOOD, {**GOOD, "options": {"format": "webp"}}, {**GOOD, "options": {"crop": True}}]
    created = api.post(
        "/v1/batches", json={"items": items, "options": batch_options}, headers=AUTH_A
    )
    assert created.status_code == 202, created.get_data(as_text=True)
    batch_id = created.get_json()["id"]
    listed = api.get(f"/v1/batches/{batch_id}/jobs", headers=AUTH_A)
    assert listed.status_code == 200, listed.get_data(as_text=True)
    jobs = listed.get_json()["items"]
    assert len(jobs) == 3
    for job in jobs:
        for name, value in stored.items():
            assert job["options"][name] == value, (name, job["options"])
    assert [job["options"]["format"] for job in jobs] == ["png", "webp", "png"]
    assert [job["options"]["crop"] for job in jobs] == [False, False, True]


#: options with more than one problem, in the client's order → the option named
FIRST_PROBLEM: list[tuple[dict[str, Any], str]] = [
    ({"format": "bmp", "zzz": 1}, "format"),
    ({"zzz": 1, "format": "bmp"}, "zzz"),
    ({"margin": -1, "format": "bmp"}, "margin"),
    ({"format": "bmp", "margin": -1}, "format"),
    ({"roi": "1 2 3", "bg_color": "red"}, "roi"),
]


@pytest.mark.parametrize(("options", "named"), FIRST_PROBLEM)
def test_the_first_problem_in_the_clients_order_is_named(
    api: FlaskClient, options: dict[str, Any], named: str
) -> None:
    """Each wrong option is refused alone; of several, the first the client gave is
    named (JSON jobs, JSON batches and multipart forms alike)."""

    def post_json(path: str, body: dict[str, Any]) -> Any:
        # json.dumps keeps the client's order (the test client's json= sorts the keys)
        return api.post(
            path, data=json.dumps(body), content_type="application/json", headers=AUTH_A
        )

    form = {name: str(value) for name, value in options.items()}
    answers = [
        post_json("/v1/jobs", {**GOOD, "options": options}),
        post_json("/v1/batches", {"items": [GOOD], "options": options}),
        post_json("/v1/batches", {"items": [GOOD, {**GOOD, "options": options}]}),
        api.post(
            "/v1/jobs", data={"image": (io.BytesIO(photo()), "a.png"), **form}, headers=AUTH_A
        ),
        api.post(
            "/v1/jobs",
            data={"image": (io.BytesIO(photo()), "a.png"), "options": json.dumps(options)},
            headers=AUTH_A,
        ),
    ]
    for answer in answers:
        assert answer.status_code == 422, answer.get_data(as_text=True)
        body = answer.get_json()
        assert (body["code"], body["option"]) == ("invalid_option", named), body
