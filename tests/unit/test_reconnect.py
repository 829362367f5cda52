"""worker/reconnect.py: the runs a broker connection loss cancelled are put back once."""

from __future__ import annotations

from typing import Any

import pytest

from worker import reconnect


class RecordingQoS:
    """Stands in for kombu's Redis QoS: records restore_by_tag calls, fails on ``bad``."""

    def __init__(self, bad: str = "") -> None:
        self.restored: list[tuple[str, bool]] = []
        self.bad = bad

    def restore_by_tag(self, tag: str, client: Any = None, leftmost: bool = False) -> None:
        if tag == self.bad:
            raise ConnectionError("gone again")
        self.restored.append((tag, leftmost))


@pytest.fixture(autouse=True)
def nothing_noted() -> None:
    reconnect._take()


def test_each_noted_message_goes_back_to_the_head_of_its_queue_once() -> None:
    reconnect.note_cancelled("tag-1")
    reconnect.note_cancelled(None)  # a request without a message: nothing to restore
    reconnect.note_cancelled("tag-2")
    qos = RecordingQoS()
    assert reconnect.restore(qos) == 2
    assert qos.restored == [("tag-1", True), ("tag-2", True)]
    # the next reconnection has nothing left to restore
    assert reconnect.restore(qos) == 0
    assert len(qos.restored) == 2


def test_a_failed_restore_leaves_the_others_done(caplog: pytest.LogCaptureFixture) -> None:
    reconnect.note_cancelled("tag-1")
    reconnect.note_cancelled("tag-2")
    qos = RecordingQoS(bad="tag-1")
    assert reconnect.restore(qos) == 2
    assert qos.restored == [("tag-2", True)]
    assert "could not hand a cancelled run's message back" in caplog.text
