"""What the README promises is what the code does: matching rembg is what the parity test
checks (tests/integration/test_parity.py), not more (within MAX_DIFF levels of rembg's,
not "pixel-identical"); the API key minimum is the settings'; the loopback refusal it
quotes is the guard's."""

from __future__ import annotations

import ipaddress
import re

import pytest

from shared.contract.settings import parse_api_keys
from shared.net.address import allow_hint
from tests.conftest import ROOT


def parity_bound(name: str) -> float:
    text = (ROOT / "tests" / "integration" / "test_parity.py").read_text()
    match = re.search(rf"^{name} = ([0-9.]+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


def test_readme_states_the_parity_the_tests_check() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "pixel-identical" not in readme
    assert "bit-identical to rembg" not in readme
    max_diff = int(parity_bound("MAX_DIFF"))
    assert f"within {max_diff} levels (of 255)" in readme
    assert f"mean difference under {parity_bound('MEAN_DIFF'):g}" in readme
    assert "tests/integration/test_parity.py" in readme


def test_the_package_description_states_the_parity_the_readme_does() -> None:
    """pip and PyPI show pyproject.toml's description: it said "rembg-identical"."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    description = project["description"]
    assert "identical" not in description
    assert f"within {int(parity_bound('MAX_DIFF'))} levels (of 255) of rembg's" in description


def test_readme_states_the_api_key_minimum_the_settings_enforce() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    match = re.search(r"each key at least (\d+) characters", readme)
    assert match, "README must say how long an API key must be"
    minimum = int(match.group(1))
    assert parse_api_keys("shop:" + "k" * minimum) == {"k" * minimum: "shop"}
    with pytest.raises(ValueError, match="shorter than"):
        parse_api_keys("shop:" + "k" * (minimum - 1))


def test_readme_quotes_the_loopback_refusal_and_its_hint_as_the_guard_says_them() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "### Testing webhooks locally" in (ROOT / "README.md").read_text()
    said = "the address is loopback" + allow_hint(ipaddress.ip_address("127.0.0.1"))
    assert f'"{said}"' in readme
    assert "CUTOUT_ALLOWED_PRIVATE_NETWORKS=127.0.0.0/8,::1/128 cutout up" in readme
