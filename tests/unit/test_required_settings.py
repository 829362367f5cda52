"""One policy for CUTOUT_REDIS_URL (shared/contract/settings.py ``NEEDS_REDIS``): the API and the
worker cannot run without it, and a missing one stops them at start the way a wrong value
does, with the same message, whichever way they start (create_app, create_worker_app;
the command line: tests/integration/test_required_settings_start.py); no process falls
back to a Redis on localhost. Commands that need no Redis start without it."""

from __future__ import annotations

import pytest

from shared.contract.settings import SettingsError, load_settings

# no server answers here: nothing may connect before the check
NOWHERE = {"CUTOUT_S3_ENDPOINT_URL": "http://127.0.0.1:1"}


def missing(process: str) -> str:
    who = {"api": "the API", "worker": "the worker"}[process]
    return (
        f"CUTOUT_REDIS_URL: required by {who} (Redis for jobs and the queue); "
        "`cutout up` sets it for you"
    )


@pytest.mark.parametrize("process", ["api", "worker"])
def test_the_api_and_the_worker_refuse_to_load_without_redis(process: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(NOWHERE, process=process)
    assert caught.value.problems == [missing(process)]
    # listed with the other problems, all at once
    with pytest.raises(SettingsError) as caught:
        load_settings({"CUTOUT_PORT": "abc"}, process=process)
    assert [p.split(":", 1)[0] for p in caught.value.problems] == [
        "CUTOUT_PORT",
        "CUTOUT_REDIS_URL",
    ]


def test_commands_without_redis_need_none() -> None:
    assert load_settings(NOWHERE).redis_url is None
    url = "redis://127.0.0.1:1/0"
    assert load_settings({"CUTOUT_REDIS_URL": url}, process="worker").redis_url == url


def test_create_app_refuses_settings_without_redis() -> None:
    from api.app import create_app

    with pytest.raises(SettingsError) as caught:
        create_app(load_settings(NOWHERE))
    assert caught.value.problems == [missing("api")]


def test_the_worker_app_refuses_settings_without_redis() -> None:
    """It used a Redis on 127.0.0.1:6379 without a word: another deployment's, or none."""
    from worker.celery_app import create_worker_app

    with pytest.raises(SettingsError) as caught:
        create_worker_app(load_settings(NOWHERE))
    assert caught.value.problems == [missing("worker")]
