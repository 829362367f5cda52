"""Settings errors read as a user's message, and unknown CUTOUT_* variables are named.

A wrong value names its variable, the value and what is expected (never Python's own
``invalid literal for int()``); a variable no part of Cutout reads (a typo) is warned
about once, naming the closest known setting (cutout/envcheck.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cutout import envcheck
from shared.contract.settings import _PARSERS, PREFIX, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
PYTHON_INTERNALS = ("invalid literal", "could not convert", "base 10", "Traceback")


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    return caught.value.problems


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CUTOUT_PORT", "abc", "CUTOUT_PORT: expected a whole number from 1 to 65535, got 'abc'"),
        ("CUTOUT_PORT", "70000", "CUTOUT_PORT: must be between 1 and 65535, got '70000'"),
        ("CUTOUT_RATE_LIMIT", "fast", "CUTOUT_RATE_LIMIT: expected a positive number"),
        ("CUTOUT_RATE_LIMIT", "-2", "CUTOUT_RATE_LIMIT: must be a positive number, got '-2'"),
        ("CUTOUT_MAX_SIDE", "1.5", "CUTOUT_MAX_SIDE: expected a whole number from 16 to 100000"),
        ("CUTOUT_AUTH", "maybe", "CUTOUT_AUTH: must be one of auto, on, off, got 'maybe'"),
        ("CUTOUT_RETENTION", "1 week", "CUTOUT_RETENTION: expected a duration like 30s"),
    ],
)
def test_a_wrong_value_names_the_setting_the_value_and_what_is_expected(
    name: str, value: str, expected: str
) -> None:
    [problem] = problems({name: value})
    assert problem.startswith(expected)
    assert repr(value) in problem


@pytest.mark.parametrize("name", ["CUTOUT_MODEL_HOME", "CUTOUT_DATA_DIR"])
def test_a_folder_setting_that_names_a_file_is_refused(name: str, tmp_path: Path) -> None:
    # every later use failed with a NotADirectoryError traceback (cutout remove, fetch)
    file = tmp_path / "photo.jpg"
    file.write_bytes(b"x")
    [problem] = problems({name: str(file)})
    assert problem.startswith(f"{name}: it is a file, not a folder")
    assert load_settings({name: str(tmp_path / "new")})  # a folder still to be made is fine


@pytest.mark.parametrize("suffix", sorted(_PARSERS))
def test_no_setting_answers_garbage_with_python_internals(suffix: str) -> None:
    name = PREFIX + suffix
    try:
        load_settings({name: "zz!?"})
    except SettingsError as exc:
        [problem] = exc.problems
        assert problem.startswith(f"{name}: ")
        assert not any(word in problem for word in PYTHON_INTERNALS), problem
        if suffix != "API_KEYS":
            assert "'zz!?'" in problem, problem


def test_the_value_of_the_api_keys_is_never_shown() -> None:
    secret = "acme:short-secret"
    [problem] = problems({"CUTOUT_API_KEYS": secret})
    assert problem.startswith("CUTOUT_API_KEYS: ")
    assert "short-secret" not in problem


def test_every_problem_is_listed_at_once() -> None:
    found = problems({"CUTOUT_PORT": "x", "CUTOUT_MAX_SIDE": "y", "CUTOUT_AUTH": "z"})
    assert [p.split(":", 1)[0] for p in found] == ["CUTOUT_PORT", "CUTOUT_AUTH", "CUTOUT_MAX_SIDE"]


def test_a_typo_names_the_closest_setting() -> None:
    found = envcheck.unknown_variables(
        {
            "CUTOUT_PROT": "9000",
            "CUTOUT_MAX_UPLAOD_BYTES": "1MB",
            "CUTOUT_REDIS_URL": "redis://x",  # known
            "CUTOUT_API_URL": "http://x",  # known, read by cutout submit
            "PATH": "/bin",  # not ours
        }
    )
    assert found == [
        "CUTOUT_MAX_UPLAOD_BYTES is not a Cutout setting and is ignored; "
        "did you mean CUTOUT_MAX_UPLOAD_BYTES?",
        "CUTOUT_PROT is not a Cutout setting and is ignored; did you mean CUTOUT_PORT?",
    ]


def test_an_unknown_name_without_a_close_setting_points_at_the_docs() -> None:
    [message] = envcheck.unknown_variables({"CUTOUT_XYZZY": "1"})
    assert message == (
        "CUTOUT_XYZZY is not a Cutout setting and is ignored (docs/settings.md lists them)"
    )


def test_the_warning_is_given_once_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envcheck, "_warned", False)
    said: list[str] = []
    env = {"CUTOUT_PROT": "1"}
    assert envcheck.warn_unknown_variables(env, said.append) == said
    assert envcheck.warn_unknown_variables(env, said.append) == []
    assert said == ["CUTOUT_PROT is not a Cutout setting and is ignored; did you mean CUTOUT_PORT?"]


def cutout_stderr(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cutout", "--version"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stderr


def test_every_cutout_command_warns_at_start_on_stderr() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    assert cutout_stderr(env) == ""
    env["CUTOUT_WORKER_CONCURENCY"] = "2"
    assert cutout_stderr(env).splitlines() == [
        "cutout: warning: CUTOUT_WORKER_CONCURENCY is not a Cutout setting and is ignored; "
        "did you mean CUTOUT_WORKER_CONCURRENCY?"
    ]
