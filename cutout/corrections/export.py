"""Download a tenant's corrected jobs (``GET /v1/corrections``) into a training set.

``OUT/images/<job id>.<ext>`` is the input as stored (its type read from the answer),
``OUT/masks/<job id>.png`` the newest corrected mask (grey, the input's size), and
``OUT/manifest.csv`` lists them (cutout/corrections/manifest.py). Every file is written
whole, then renamed into place (shared/atomicfile.py), and the manifest is rewritten as
items finish, so an interrupted export leaves only complete files and a manifest that
names only them. A re-run skips what the manifest already has: the same job's input,
and its mask while the version is the same (a job corrected again since gets its new
mask, in place of the old).
"""

from __future__ import annotations

import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cutout.client import ApiClient, ApiError
from cutout.corrections import manifest
from cutout.submit.progress import Progress
from shared.atomicfile import atomic_write

PROG = "cutout corrections export"
PAGE = 200  # corrections per listing page
SAVE_EVERY = 2.0  # seconds between manifest writes while downloading
EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/bmp": "bmp",
    "image/tiff": "tif",
}


@dataclass
class Outcome:
    """What an export did: counts for the last line, problems for stderr."""

    listed: int = 0
    downloaded: int = 0
    kept: int = 0
    gone: list[str] = field(default_factory=list)  # jobs whose input or mask was deleted


def list_corrections(
    client: ApiClient, since: str | None, batch: str | None
) -> list[dict[str, Any]]:
    """Every listed correction, one per job (its newest, when a job was corrected again
    while paging), oldest first."""
    query: dict[str, str | int] = {"limit": PAGE}
    if since:
        query["since"] = since
    if batch:
        query["batch_id"] = batch
    newest: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        page_query = {**query, **({"cursor": cursor} if cursor else {})}
        body = client.call("GET", "/v1/corrections?" + urllib.parse.urlencode(page_query)).json()
        for item in body.get("items") or []:
            known = newest.get(item["job_id"])
            if known is None or int(item["version"]) >= int(known["version"]):
                newest[item["job_id"]] = item
        cursor = body.get("next_cursor")
        if not cursor:
            return sorted(newest.values(), key=lambda i: (i["corrected_at"], i["job_id"]))


class Export:
    """One run of the export into ``out`` (see the module doc)."""

    def __init__(
        self, client: ApiClient, out: Path, category: str, quiet: bool, concurrency: int = 4
    ) -> None:
        self.client = client
        self.out = out
        self.category = category
        self.quiet = quiet
        self.concurrency = concurrency
        self.path = out / manifest.NAME
        self.rows = manifest.read_rows(self.path)
        self._saved = time.monotonic()

    def run(self, items: list[dict[str, Any]]) -> Outcome:
        outcome = Outcome(listed=len(items))
        todo = [item for item in items if not self._complete(item)]
        outcome.kept = len(items) - len(todo)
        progress = Progress("corrections", len(items), outcome.kept, self.quiet, prog=PROG)
        pool = ThreadPoolExecutor(self.concurrency)
        try:
            for item, row in zip(todo, pool.map(self._fetch, todo), strict=True):
                if row is None:
                    outcome.gone.append(str(item["job_id"]))
                    progress.write(
                        f"{PROG}: {item['job_id']}: its input or mask is no longer stored "
                        "(deleted); left out"
                    )
                else:
                    self.rows[row["job_id"]] = row
                    outcome.downloaded += 1
                    self._save_now_and_then()
                progress.update(outcome.kept + outcome.downloaded + len(outcome.gone))
        finally:
            # on an error or Ctrl-C: the downloads not yet started are dropped, and the
            # manifest names what is complete
            pool.shutdown(wait=True, cancel_futures=True)
            manifest.write_rows(self.path, self.rows)
            progress.close()
        return outcome

    def _complete(self, item: dict[str, Any]) -> bool:
        """Whether an earlier run already has this correction: same version, both files."""
        row = self.rows.get(str(item["job_id"]))
        if row is None or row.get("version") != str(item["version"]):
            return False
        return (self.out / row["image"]).is_file() and (self.out / row["mask"]).is_file()

    def _fetch(self, item: dict[str, Any]) -> dict[str, str] | None:
        """Download the item's input (unless the manifest has it) and mask; its row, or
        None when either is gone (404)."""
        job_id = str(item["job_id"])
        try:
            image = self._input(item)
            mask = f"masks/{job_id}.png"
            data = self.client.call("GET", str(item["mask_url"])).body
            atomic_write(self.out / mask, data)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return manifest.row_for(item, image, mask, self.category)

    def _input(self, item: dict[str, Any]) -> str:
        job_id = str(item["job_id"])
        row = self.rows.get(job_id)
        if row is not None and (self.out / row["image"]).is_file():
            return row["image"]  # a job's input never changes
        response = self.client.call("GET", str(item["input_url"]))
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        name = f"images/{job_id}.{EXTENSIONS.get(media_type, 'bin')}"
        atomic_write(self.out / name, response.body)
        return name

    def _save_now_and_then(self) -> None:
        if time.monotonic() - self._saved >= SAVE_EVERY:
            manifest.write_rows(self.path, self.rows)
            self._saved = time.monotonic()
