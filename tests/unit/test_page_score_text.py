"""The page's score beside its verdict (api/static/quality.js): two decimals that never
contradict "Needs a look".

A job's ``review`` is ``score < CUTOUT_REVIEW_BELOW`` on the API's four decimals. Rounded
to two, a score of 0.8461 read "! Needs a look · 0.85" under "A result scoring below 0.85
is marked Needs a look". The module is run by Node (the CI image has it for the remove.bg
client test); its label functions touch no DOM.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from api import web

QUALITY_JS = Path(web.__file__).resolve().parent / "static" / "quality.js"
THRESHOLD = 0.85  # the default CUTOUT_REVIEW_BELOW


def _labels(scores: list[float]) -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    items = [
        {
            "status": "succeeded",
            "job": {"result": {"quality": {"score": s, "review": s < THRESHOLD, "flags": []}}},
        }
        for s in scores
    ]
    script = (
        f"import {{ itemLabel }} from {json.dumps(QUALITY_JS.as_uri())};\n"
        f"console.log(JSON.stringify({json.dumps(items)}.map(itemLabel)));\n"
    )
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_a_score_just_below_the_threshold_is_not_shown_as_the_threshold() -> None:
    labels = _labels([0.8461, 0.8499, 0.85, 0.29, 1.0, 0.0])
    assert labels == [
        "Needs a look, score 0.84",
        "Needs a look, score 0.84",
        "Looks right, score 0.85",
        "Needs a look, score 0.29",
        "Looks right, score 1.00",
        "Needs a look, score 0.00",
    ]
