"""Client JSON is JSON: Python's NaN and Infinity extensions are refused.

A record registered with ``NaN`` was stored and repeated by ``GET /v1/models``, which
strict JSON parsers (JavaScript's ``JSON.parse``, Go's ``encoding/json``) cannot read.
"""

from __future__ import annotations

import pytest

from shared.contract.shapes.jsontext import loads
from shared.errors import InvalidRequest


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', "[-Infinity]"])
def test_non_json_constants_are_refused(text: str) -> None:
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        loads(text, "the record", field="record")


def test_plain_json_still_parses() -> None:
    assert loads('{"a": 1.5e300, "b": [null, true]}') == {"a": 1.5e300, "b": [None, True]}
