"""What ``cutout remove`` says about each input: one :class:`Row` per input, written as
the ``--report`` CSV (atomically: a killed run leaves the old file or none, never half
of one), as ``-v`` lines, and as the closing count of cutouts to look at."""

from __future__ import annotations

import csv
import dataclasses
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from shared.atomicfile import atomic_write

if TYPE_CHECKING:
    from worker.engine.quality import Quality

COLUMNS = ("input", "output", "status", "score", "review", "flags", "error_code", "error_message")
#: an input the run stopped before (an output could not be written, a model failure,
#: Ctrl-C)
NOT_PROCESSED = "not_processed"


@dataclasses.dataclass(frozen=True)
class Row:
    """One input's outcome. ``status``: ``succeeded``, ``failed`` (``error_code`` says
    why) or ``not_processed``; ``score``/``review``/``flags`` only for a succeeded input
    whose cutout could be scored (docs/quality.md)."""

    input: str
    output: str
    status: str
    score: float | None = None
    review: bool | None = None
    flags: tuple[str, ...] = ()
    error_code: str = ""
    error_message: str = ""

    @property
    def label(self) -> str:
        return "stdin" if self.input == "-" else self.input

    def cells(self) -> list[str]:
        return [
            self.input,
            self.output,
            self.status,
            "" if self.score is None else str(round(self.score, 4)),
            "" if self.review is None else str(self.review).lower(),
            " ".join(self.flags),
            self.error_code,
            self.error_message,
        ]


def succeeded(source: str, target: Path | None, quality: Quality | None, below: float) -> Row:
    """A done input's row; ``review`` is ``score < below`` (``CUTOUT_REVIEW_BELOW``, as
    the worker marks ``result.quality.review``)."""
    output = "-" if target is None else str(target)
    if quality is None:  # the model's map could not be scored: no score, not an error
        return Row(source, output, "succeeded")
    return Row(
        source,
        output,
        "succeeded",
        score=quality.score,
        review=quality.score < below,
        flags=tuple(quality.flags),
    )


def failed(source: str, code: str, message: str) -> Row:
    return Row(source, "", "failed", error_code=code, error_message=message)


def not_processed(source: str) -> Row:
    return Row(source, "", NOT_PROCESSED)


def score_line(row: Row, below: float) -> str:
    """``-v``'s line for a done input: its score, whether to look at it, its flags."""
    if row.score is None:
        return f"{row.label}: no score (the model's map could not be scored)"
    mark = f" (review: below {below:g})" if row.review else ""
    flags = f"flags: {' '.join(row.flags)}" if row.flags else "no flags"
    return f"{row.label}: score {round(row.score, 4)}{mark}; {flags}"


def review_line(rows: list[Row], below: float, report: str | None) -> str:
    """The closing line: how many of the cutouts need a look, and where the list is."""
    done = [row for row in rows if row.status == "succeeded"]
    count = sum(1 for row in done if row.review)
    where = "" if report in (None, "-") else f": see {report}"
    if not count:
        return f"none of the {len(done):,} cutouts needs a look (no score below {below:g}){where}"
    noun = "cutout needs" if len(done) == 1 else "cutouts need"
    return f"{count:,} of {len(done):,} {noun} a look (score below {below:g}){where}"


def write_report(report: str, rows: list[Row]) -> None:
    """The CSV, one row per input in the order given; ``-`` is stdout. OSError when the
    file cannot be written."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(row.cells() for row in rows)
    if report == "-":
        sys.stdout.write(text.getvalue())
        sys.stdout.flush()
    else:
        atomic_write(Path(report), text.getvalue().encode())
