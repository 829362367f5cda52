"""TLS settings: the files reach every Redis URL's query, and the settings check names
the variable of a file that is missing, unreadable or not what it should be, before
anything starts (shared/redis/tls.py). The real servers are tests/integration/test_redis_tls.py.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import redis

from shared.contract.settings import SettingsError, load_settings
from shared.errors import Unavailable
from shared.redis.errors import redis_errors
from shared.redis.tls import redacted, tls_url
from testkit.tls import TlsFiles, make_tls_files

URL = "rediss://cutout:s3cret@redis.internal:6380/0"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("certs"))


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    return caught.value.problems


def query(url: str | None) -> dict[str, list[str]]:
    return parse_qs(urlsplit(str(url)).query)


def full(files: TlsFiles, **extra: str) -> dict[str, str]:
    return {
        "CUTOUT_REDIS_URL": URL,
        "CUTOUT_REDIS_TLS_CA_FILE": str(files.ca),
        "CUTOUT_REDIS_TLS_CERT_FILE": str(files.client_cert),
        "CUTOUT_REDIS_TLS_KEY_FILE": str(files.client_key),
        **extra,
    }


def test_the_files_go_into_the_query_of_both_rediss_urls(files: TlsFiles) -> None:
    broker = "rediss://celery:pw@broker.internal:6380/1"
    settings = load_settings(full(files, CUTOUT_BROKER_URL=broker))
    for url, base in ((settings.redis_url, URL), (settings.broker_url, broker)):
        assert str(url).startswith(base + "?")
        assert query(url) == {
            "ssl_ca_certs": [str(files.ca)],
            "ssl_certfile": [str(files.client_cert)],
            "ssl_keyfile": [str(files.client_key)],
            "ssl_cert_reqs": ["required"],
        }
    # a separate broker stays separate; the same one stays the same (api/app.py compares)
    same = load_settings(full(files, CUTOUT_BROKER_URL=URL))
    assert same.broker_url == same.redis_url


def test_a_rediss_url_always_verifies_and_a_plain_url_is_left_alone(files: TlsFiles) -> None:
    # without it Celery's redis transport would connect to a rediss:// broker unverified
    assert query(load_settings({"CUTOUT_REDIS_URL": URL}).redis_url) == {
        "ssl_cert_reqs": ["required"]
    }
    plain = "redis://:pw@redis.internal:6379/0"
    assert load_settings({"CUTOUT_REDIS_URL": plain}).redis_url == plain
    # the URL's own query wins: a broker with a CA of its own, or verification set to none
    own = f"{URL}?ssl_ca_certs={files.other_ca}&ssl_cert_reqs=none"
    assert query(tls_url(own, files.ca)) == {
        "ssl_ca_certs": [str(files.other_ca)],
        "ssl_cert_reqs": ["none"],
    }


@pytest.mark.parametrize(
    "variable",
    [
        "CUTOUT_REDIS_TLS_CA_FILE",
        "CUTOUT_REDIS_TLS_CERT_FILE",
        "CUTOUT_REDIS_TLS_KEY_FILE",
        "CUTOUT_S3_CA_BUNDLE",
    ],
)
def test_a_missing_file_or_a_folder_is_named(
    variable: str, files: TlsFiles, tmp_path: Path
) -> None:
    gone = tmp_path / "gone.pem"
    assert problems(full(files, **{variable: str(gone)})) == [
        f"{variable}: no such file, got '{gone}'"
    ]
    assert problems(full(files, **{variable: str(tmp_path)})) == [
        f"{variable}: not a file, got '{tmp_path}'"
    ]


def test_files_that_are_not_what_they_should_be_are_named(files: TlsFiles, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    [problem] = problems(full(files, CUTOUT_REDIS_TLS_CA_FILE=str(junk)))
    assert problem.startswith("CUTOUT_REDIS_TLS_CA_FILE: no PEM certificate a TLS client")
    # a certificate with another certificate's key
    [problem] = problems(full(files, CUTOUT_REDIS_TLS_KEY_FILE=str(files.server_key)))
    assert problem.startswith("CUTOUT_REDIS_TLS_CERT_FILE: the certificate")
    assert "do not load as a TLS client certificate" in problem
    # a key alone
    env = full(files)
    del env["CUTOUT_REDIS_TLS_CERT_FILE"]
    assert problems(env) == ["CUTOUT_REDIS_TLS_KEY_FILE: a key needs its certificate as well"]
    [problem] = problems({"CUTOUT_S3_CA_BUNDLE": str(junk)})
    assert problem.startswith("CUTOUT_S3_CA_BUNDLE: no PEM certificate")


def test_tls_files_without_a_rediss_url_are_refused(files: TlsFiles) -> None:
    # redis:// would ignore them without a word: the user forgot the second s
    env = full(files, CUTOUT_REDIS_URL="redis://cutout:pw@redis.internal:6379/0")
    [problem] = problems(env)
    assert problem.startswith(
        "CUTOUT_REDIS_TLS_CA_FILE, CUTOUT_REDIS_TLS_CERT_FILE, CUTOUT_REDIS_TLS_KEY_FILE: set, "
        "but neither CUTOUT_REDIS_URL nor CUTOUT_BROKER_URL is a rediss:// URL"
    )
    # one rediss:// URL is enough (a TLS broker, a plain store)
    assert load_settings(full(files, CUTOUT_BROKER_URL=URL, CUTOUT_REDIS_URL="redis://r:6379"))


def test_the_files_a_url_names_are_checked_too(files: TlsFiles, tmp_path: Path) -> None:
    gone = tmp_path / "gone.pem"
    found = problems(
        {"CUTOUT_BROKER_URL": f"{URL}?ssl_ca_certs={gone}&ssl_certfile={files.client_cert}"}
    )
    assert found == [f"CUTOUT_BROKER_URL: its ssl_ca_certs file '{gone}': no such file"]
    found = problems({"CUTOUT_REDIS_URL": f"{URL}?ssl_cert_reqs=CERT_REQUIRED"})
    assert found == ["CUTOUT_REDIS_URL: ssl_cert_reqs must be one of required, optional, none"]


def test_botocores_aws_ca_bundle_is_checked_unless_ours_is_set(
    files: TlsFiles, tmp_path: Path
) -> None:
    gone = str(tmp_path / "gone.pem")
    assert problems({"AWS_CA_BUNDLE": gone}) == [f"AWS_CA_BUNDLE: no such file, got '{gone}'"]
    settings = load_settings({"AWS_CA_BUNDLE": gone, "CUTOUT_S3_CA_BUNDLE": str(files.ca)})
    assert settings.s3_ca_bundle == files.ca


def test_a_urls_password_is_never_shown() -> None:
    found = problems({"CUTOUT_REDIS_URL": "redis host:s3cret@x", "CUTOUT_BROKER_URL": "u:s3cret@b"})
    assert found == [
        "CUTOUT_REDIS_URL: expected a URL, got 'redis host:***@x'",
        "CUTOUT_BROKER_URL: expected a URL, got 'u:***@b'",
    ]
    assert redacted("rediss://cutout:p%40ss@h:6380/0?x=1") == "rediss://cutout:***@h:6380/0?x=1"
    assert redacted("redis://h:6379/0") == "redis://h:6379/0"


def test_a_failed_tls_handshake_says_so() -> None:
    cause = redis.ConnectionError(
        "Error 1 connecting to 127.0.0.1:6380. [SSL: CERTIFICATE_VERIFY_FAILED] "
        "certificate verify failed: self-signed certificate in certificate chain"
    )
    with pytest.raises(Unavailable) as caught, redis_errors():
        raise cause
    assert caught.value.message == (
        "the job store (Redis) is unavailable (TLS: certificate verify failed)"
    )
    with pytest.raises(Unavailable) as caught, redis_errors():
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6380. Connection refused.")
    assert caught.value.message == "the job store (Redis) is unavailable"
