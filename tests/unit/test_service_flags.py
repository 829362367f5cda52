"""Every command that talks to a running service finds it the same way: ``--api`` and
``--api-key``, else CUTOUT_API_URL and CUTOUT_API_KEY, else the local service
(cutout/commands ``add_service_flags``). ``cutout models push`` ignored CUTOUT_API_URL
and pushed to 127.0.0.1:8080."""

from __future__ import annotations

import pytest

from cutout.cli import build_parser

COMMANDS = [
    ["submit", "photos", "--out", "cutouts"],
    ["corrections", "export", "training"],
    ["models", "push", "shoes"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv[:2]))
def test_the_service_and_its_key_come_from_the_same_variables(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUTOUT_API_URL", "https://cutout.example")
    monkeypatch.setenv("CUTOUT_API_KEY", "shop-key-0123456789")
    args = build_parser().parse_args(argv)
    assert (args.api, args.api_key) == ("https://cutout.example", "shop-key-0123456789")
    given = build_parser().parse_args([*argv, "--api", "http://10.0.0.5:8080", "--api-key", "k"])
    assert (given.api, given.api_key) == ("http://10.0.0.5:8080", "k")


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv[:2]))
def test_without_them_the_local_service_without_a_key(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUTOUT_API_URL", raising=False)
    monkeypatch.delenv("CUTOUT_API_KEY", raising=False)
    args = build_parser().parse_args(argv)
    assert (args.api, args.api_key) == ("http://127.0.0.1:8080", None)
