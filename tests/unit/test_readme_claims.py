"""What the README promises about matching rembg is what the parity test checks
(tests/integration/test_parity.py), not more: the output is within MAX_DIFF levels of
rembg's, not "pixel-identical"."""

from __future__ import annotations

import re

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
