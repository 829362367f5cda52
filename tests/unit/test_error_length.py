"""A refused value is quoted, not echoed whole (shared/errors.py MESSAGE_MAX).

An option's message quotes what it refuses (``score must be one of basic, full, got
'…'``): a 100,000-character ``score`` came back whole in the 422's ``detail`` (and in
remove.bg's ``title``), 100 kB an answer. The message now keeps its start and says how
much was left out, for every option and every error.
"""

from __future__ import annotations

import json

import pytest

from shared.contract.options import parse_options
from shared.errors import InvalidOption, InvalidRequest


@pytest.mark.parametrize("option", ["score", "format", "model", "bg_color", "scale"])
def test_a_huge_refused_value_gives_a_short_problem(option: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        parse_options({option: "x" * 100_000})
    problem = caught.value.to_problem()
    assert problem["code"] == "invalid_option"
    assert problem["option"] == option
    assert problem["detail"].startswith(f"{option} must "), problem["detail"][:80]
    assert "more characters)" in problem["detail"]
    assert len(json.dumps(problem)) < 2_000


def test_a_message_within_the_limit_is_kept_whole() -> None:
    text = "`review` must be true or false, got 'yes'"
    assert InvalidRequest(text, field="review").message == text
    assert InvalidRequest().message == InvalidRequest.title
