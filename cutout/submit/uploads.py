"""Uploads through signed URLs, then the batch's ``POST /v1/batches``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cutout.submit.common import (
    CONTENT_TYPES,
    REPORT_NAME,
    UPLOAD_SLOTS,
    SubmitError,
    error_message,
)
from cutout.submit.context import Context
from cutout.submit.progress import Progress


class Uploads:
    """Upload the files, create the batch."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def upload(self, names: list[str]) -> None:
        """Signed slots per content type (100 per call), then PUTs, N at a time."""
        from cutout.client import ClientError

        ctx = self.ctx
        if not names:
            return

        by_type: dict[str, list[str]] = {}
        for name in names:
            content_type = CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
            by_type.setdefault(content_type, []).append(name)
        work: list[tuple[str, dict[str, Any]]] = []
        for content_type, group in by_type.items():
            sized = self._sized(group)
            for start in range(0, len(sized), UPLOAD_SLOTS):
                chunk = sized[start : start + UPLOAD_SLOTS]
                work.extend(self._slots(chunk, content_type))
        progress = Progress("upload", len(work), 0, ctx.args.quiet)
        ctx.progress = progress
        failed = 0

        def put(item: tuple[str, dict[str, Any]]) -> str | None:
            name, slot = item
            try:
                data = (ctx.source / name).read_bytes()
                ctx.client.put_upload(slot, data)
            except (OSError, ClientError) as exc:
                code = getattr(exc, "code", "read_error")
                error = {"code": code, "message": f"upload failed: {error_message(exc)}"}
                with ctx.state.lock:
                    ctx.state.files[name]["error"] = error
                    ctx.state.touch()
                return name
            with ctx.state.lock:
                entry = ctx.state.files[name]
                entry["upload_key"] = slot["upload_key"]
                entry["error"] = None
                ctx.state.touch()
            return None

        for done, problem in enumerate(ctx.pool.map(put, work), 1):
            if problem is not None:
                failed += 1
            progress.update(done, f"{failed} failed" if failed else "")
        progress.close(f"{failed} failed" if failed else "")
        ctx.progress = None
        ctx.state.flush()
        if failed:
            ctx.say(f"{failed} upload(s) failed; they are listed in {REPORT_NAME}")

    def _sized(self, names: list[str]) -> list[tuple[str, int]]:
        """(name, bytes) of the files to upload; an empty or unreadable one gets its error
        here (an upload URL is signed for an exact, positive size)."""
        out = []
        for name in names:
            try:
                size = (self.ctx.source / name).stat().st_size
            except OSError as exc:
                self._refuse(name, "read_error", f"cannot read it: {exc.strerror or exc}")
                continue
            if size == 0:
                self._refuse(name, "invalid_image", "the file is empty")
                continue
            out.append((name, size))
        return out

    def _slots(
        self, chunk: list[tuple[str, int]], content_type: str
    ) -> list[tuple[str, dict[str, Any]]]:
        """Upload slots for ``chunk``; when the API refuses a size (over its limit), the
        files are asked for one by one and the refused ones get the API's error."""
        from cutout.client import ApiError

        try:
            slots = self.ctx.client.create_uploads([size for _, size in chunk], content_type)
            return list(zip([name for name, _ in chunk], slots, strict=True))
        except ApiError as exc:
            if exc.status != 413:
                raise
            if len(chunk) == 1:
                self._refuse(chunk[0][0], exc.code or "payload_too_large", exc.detail)
                return []
        out = []
        for item in chunk:
            out.extend(self._slots([item], content_type))
        return out

    def _refuse(self, name: str, code: str, message: str) -> None:
        ctx = self.ctx
        with ctx.state.lock:
            ctx.state.files[name]["error"] = {"code": code, "message": message}
            ctx.state.touch()
        ctx.say(f"{name}: not uploaded ({code}: {message})")

    def create(self, seq: int) -> None:
        """POST the batch record ``seq`` (Idempotency-Key from the state); save its id.

        An item the API refuses (its upload vanished, too large) leaves the batch with
        its error, and the rest is sent again under a new key.
        """
        from cutout.client import ApiError

        ctx = self.ctx
        state = ctx.state
        record = state.batches[seq]
        attempt = 0
        while record["files"]:
            body: dict[str, Any] = {
                "items": [
                    {
                        "upload_key": state.files[name]["upload_key"],
                        "metadata": {"file": name},
                    }
                    for name in record["files"]
                ],
                "options": state.data["options"],
            }
            if record.get("webhook_url"):
                body["webhook_url"] = record["webhook_url"]
            try:
                batch = ctx.client.create_batch(body, record["key"])
            except ApiError as exc:
                index = exc.problem.get("item")
                if not (
                    400 <= exc.status < 500
                    and isinstance(index, int)
                    and 0 <= index < len(record["files"])
                ):
                    raise SubmitError(
                        f"the service refused the batch: {error_message(exc)}"
                    ) from None
                with state.lock:
                    name = record["files"].pop(index)
                    entry = state.files[name]
                    entry.update(batch=None, error={"code": exc.code, "message": exc.detail})
                    if exc.code == "upload_not_found":
                        entry["upload_key"] = None  # a plain re-run uploads it again
                    attempt += 1
                    record["key"] = f"cutout-submit.{state.data['run']}.{seq}.{attempt}"
                    state.save()
                ctx.say(f"{name}: refused ({exc.code}: {exc.detail})")
                continue
            with state.lock:
                record["id"] = batch["id"]
                state.save()
            ctx.say(f"batch {batch['id']}: {len(record['files'])} image(s)")
            return
