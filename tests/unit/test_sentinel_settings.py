"""sentinel:// URLs: what the settings check says, what Celery and redis-py are given."""

from __future__ import annotations

from typing import Any

import pytest
from redis.sentinel import SentinelConnectionPool

from shared.contract.settings import SettingsError, load_settings
from shared.contract.tasks import celery_config
from shared.redis import sentinel
from shared.redis.errors import connect

URL = "sentinel://:p%40ss@10.0.0.1:26379;sentinel://10.0.0.2:26380;sentinel://10.0.0.3/2"


def settings(**env: str) -> Any:
    return load_settings({f"CUTOUT_{k}": v for k, v in env.items()})


def test_the_url_says_sentinels_credentials_and_database() -> None:
    info = sentinel.parse(URL)
    assert info.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380), ("10.0.0.3", 26379))
    assert (info.username, info.password, info.db) == (None, "p@ss", 2)
    user = sentinel.parse("sentinel://app:pw@h:1/0")
    assert (user.username, user.password) == ("app", "pw")


@pytest.mark.parametrize(
    "url",
    ["sentinel://", "sentinel://h:port", "sentinel://h:1/zero", "sentinel://h:1;redis://h:2"],
)
def test_a_malformed_url_is_a_settings_error_naming_the_variable(url: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings(REDIS_URL=url, REDIS_MASTER_NAME="mymaster")
    assert "CUTOUT_REDIS_URL:" in str(caught.value)


def test_a_sentinel_url_without_a_master_name_is_refused_naming_the_variable() -> None:
    for variable in ("REDIS_URL", "BROKER_URL"):
        env = {"REDIS_URL": "redis://r:6379/0", variable: URL}
        with pytest.raises(SettingsError) as caught:
            settings(**env)
        problems = caught.value.problems  # type: ignore[attr-defined]
        assert len(problems) == 1
        assert problems[0].startswith("CUTOUT_REDIS_MASTER_NAME: must be set")
        assert f"CUTOUT_{variable}" in problems[0]


def test_a_bad_master_name_is_reported_once() -> None:
    with pytest.raises(SettingsError) as caught:
        settings(REDIS_URL=URL, REDIS_MASTER_NAME="my master")
    assert len(caught.value.problems) == 1  # type: ignore[attr-defined]


def test_the_sentinel_password_is_never_repeated_in_a_message() -> None:
    with pytest.raises(SettingsError) as caught:
        settings(REDIS_URL=URL, REDIS_MASTER_NAME="bad name", REDIS_SENTINEL_PASSWORD="s3cret")
    assert "s3cret" not in str(caught.value)


def test_celery_gets_every_sentinel_with_credentials_database_and_options() -> None:
    s = settings(REDIS_URL=URL, REDIS_MASTER_NAME="mymaster", REDIS_SENTINEL_PASSWORD="sp")
    config = celery_config(s)
    assert config["broker_url"] == (
        "sentinel://:p%40ss@10.0.0.1:26379/2;sentinel://:p%40ss@10.0.0.2:26380/2;"
        "sentinel://:p%40ss@10.0.0.3:26379/2"
    )
    options = config["broker_transport_options"]
    assert options["master_name"] == "mymaster"
    assert options["sentinel_kwargs"]["password"] == "sp"
    assert options["visibility_timeout"] > 0  # the usual options stay


def test_a_separate_sentinel_broker_leaves_the_store_url_alone() -> None:
    s = settings(REDIS_URL="redis://r:6379/0", BROKER_URL=URL, REDIS_MASTER_NAME="m")
    assert s.redis_url == "redis://r:6379/0"
    assert celery_config(s)["broker_url"].startswith("sentinel://")
    assert celery_config(settings(REDIS_URL="redis://r:6379/0"))["broker_url"] == (
        "redis://r:6379/0"
    )


def test_connect_gives_a_client_of_the_primary_the_sentinels_name() -> None:
    s = settings(REDIS_URL=URL, REDIS_MASTER_NAME="mymaster", REDIS_SENTINEL_PASSWORD="sp")
    client = connect(s.redis_url)  # lazy: connects on the first command
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "mymaster"
    assert pool.connection_kwargs["password"] == "p@ss"
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["decode_responses"] is True
    sentinels = pool.sentinel_manager.sentinels
    assert len(sentinels) == 3
    assert all(s.connection_pool.connection_kwargs["password"] == "sp" for s in sentinels)
