"""A score cursor is bound to its batch (api/batches/pages.py): one from another batch is
400 naming ``cursor`` and saying so; it used to say "not a cursor this API gave out",
which is false for a cursor the API did give out, for another batch."""

from __future__ import annotations

import pytest

from api.batches import pages
from shared.contract.shapes.records import BatchRecord
from shared.errors import InvalidRequest
from shared.ids import new_id


class _Scored:
    """The one store method a score page calls first: this batch's order knows no job."""

    def batch_score_rank(self, batch_id: str, job_id: str) -> int | None:
        return None


def test_a_score_cursor_from_another_batch_is_named_as_such() -> None:
    cursor = pages.encode_score_cursor(new_id("job"))
    batch = BatchRecord(id=new_id("bat"), tenant="a", counts={"total": 3})
    with pytest.raises(InvalidRequest) as caught:
        pages.page(_Scored(), batch, {"order": "score", "cursor": cursor})  # type: ignore[arg-type]
    assert caught.value.extra == {"field": "cursor"}
    assert "another batch" in caught.value.message
