"""docker-compose.yml's `sentinel` profile and deploy/sentinel.env: Redis with a replica
and three Sentinels, and the services reaching it through them."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from shared.redis import sentinel
from tests.unit.test_deploy import COMPOSE, DEPLOY, check_settings, interpolate, service_env

ENV_FILE = DEPLOY / "sentinel.env"
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")


def env_file() -> dict[str, str]:
    lines = ENV_FILE.read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as `docker compose --env-file deploy/sentinel.env` sees it."""
    return interpolate(yaml.safe_load(COMPOSE.read_text()), env_file())  # type: ignore[no-any-return]


def options(command: list[str]) -> dict[str, str]:
    return dict(zip(command[1::2], command[2::2], strict=False))


def test_the_env_file_turns_the_profile_on() -> None:
    assert env_file()["COMPOSE_PROFILES"] == "sentinel"


def test_the_replica_follows_redis_and_keeps_data_like_it(compose: dict[str, Any]) -> None:
    replica = compose["services"]["redis-replica"]
    assert replica["profiles"] == ["sentinel"]
    command = [str(c) for c in replica["command"]]
    assert command[command.index("--replicaof") + 1 : command.index("--replicaof") + 3] == [
        "redis",
        "6379",
    ]
    primary = options([str(c) for c in compose["services"]["redis"]["command"]])
    for option in ("--appendonly", "--appendfsync", "--maxmemory-policy"):
        assert options(command)[option] == primary[option], option
    assert replica["volumes"][0].split(":")[0] in compose["volumes"]


def test_three_sentinels_watch_redis_each_with_a_file_of_its_own(
    compose: dict[str, Any],
) -> None:
    volumes = set()
    for name in SENTINELS:
        service = compose["services"][name]
        assert service["profiles"] == ["sentinel"]
        script = service["command"][0]
        monitor = re.search(r"sentinel monitor (\S+) redis 6379 (\d+)", script)
        assert monitor, name
        assert monitor.group(1) == env_file()["CUTOUT_REDIS_MASTER_NAME"]
        assert int(monitor.group(2)) == 2  # a majority of three
        assert "/data/sentinel.conf" in script
        volumes.add(service["volumes"][0].split(":")[0])
    assert len(volumes) == 3
    assert volumes <= set(compose["volumes"])


@pytest.mark.parametrize("name", ["api", "worker", "worker-gpu"])
def test_services_reach_redis_through_the_sentinels(compose: dict[str, Any], name: str) -> None:
    env = service_env(compose["services"][name])
    check_settings(f"compose service {name} (sentinel)", env)
    for variable in ("CUTOUT_REDIS_URL", "CUTOUT_BROKER_URL"):
        info = sentinel.parse(env[variable])
        assert {host for host, _ in info.sentinels} == set(SENTINELS)
        assert {port for _, port in info.sentinels} == {26379}
