"""``cutout submit DIR --out OUT``: send a folder of images to a running Cutout service.

The images of DIR (by extension; ``--recursive`` for sub-folders) are uploaded straight
to storage through signed URLs, submitted as ONE batch, and each result is downloaded
as soon as it is ready to ``OUT/<input stem>.<format extension>`` (named like ``cutout
remove``'s). At the end ``OUT/report.csv`` lists every file: job id, status, error code
and message, output file.

Re-running with the same ``--out`` resumes: ``OUT/.cutout-submit.json`` records the
batch, which file is which item, and which results were downloaded, and is rewritten
atomically as things change, so Ctrl-C (or a crash) at any point leaves a state to resume
from. Nothing is submitted twice; ``--retry-failed`` sends the failures again as a new
batch (after you fixed or replaced the files).

Exit codes: 0 every image done; 1 some failed (report.csv says which and why) or the
service could not be used; 2 usage error; 130 interrupted (run it again to resume).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cutout.commands.remove import IMAGE_SUFFIXES, add_option_flags, option_values

if TYPE_CHECKING:
    from cutout.client import ApiClient

PROG = "cutout submit"
STATE_NAME = ".cutout-submit.json"
LOCK_NAME = ".cutout-submit.lock"
REPORT_NAME = "report.csv"
STATE_VERSION = 1
DEFAULT_API = "http://127.0.0.1:8080"
CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jfif": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
TERMINAL = ("succeeded", "failed", "canceled")
FAILED = ("failed", "canceled", "expired")
UPLOAD_SLOTS = 100  # POST /v1/uploads gives at most 100 slots per call
MAX_ITEMS = 10_000  # items per batch (the server's default CUTOUT_MAX_BATCH_ITEMS)
PAGE = 200  # jobs per page when listing a batch
SAVE_INTERVAL = 0.2  # seconds between state writes for per-file progress
POLL_MIN, POLL_MAX = 0.3, 2.0  # seconds between polls of a batch
REPORT_COLUMNS = ("file", "job_id", "status", "error_code", "error_message", "output_file")


class UsageError(Exception):
    """Exit 2."""


class SubmitError(Exception):
    """Exit 1, with a message for the user."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="submit a folder of images to a running service and download the results",
        usage="%(prog)s DIR --out OUT [--api URL] [--api-key KEY] [options]",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dir", metavar="DIR", help="folder of images")
    parser.add_argument("--out", "-o", required=True, metavar="OUT", help="folder for results")
    parser.add_argument(
        "--api",
        default=os.environ.get("CUTOUT_API_URL") or DEFAULT_API,
        metavar="URL",
        help=f"the service (default: CUTOUT_API_URL or {DEFAULT_API})",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CUTOUT_API_KEY") or None,
        metavar="KEY",
        help="API key (default: CUTOUT_API_KEY)",
    )
    parser.add_argument(
        "--recursive", "-r", action="store_true", help="include sub-folders (mirrored in OUT)"
    )
    parser.add_argument(
        "--concurrency",
        "-c",
        type=int,
        default=8,
        metavar="N",
        help="uploads and downloads at once (default 8)",
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="submit the failed images again"
    )
    parser.add_argument("--webhook-url", metavar="URL", help="called once the batch completes")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    add_option_flags(parser)
    parser.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from cutout.client import ApiClient, ClientError
    from shared.errors import InvalidOption
    from shared.options import parse_options

    try:
        if args.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        source = Path(args.dir)
        if not source.is_dir():
            raise UsageError(f"{args.dir}: not a folder")
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise UsageError(f"{args.out}: not a folder")
        if out.resolve() == source.resolve():
            raise UsageError("--out must be another folder than DIR")
        given = option_values(args)
        parse_options(given)
        if not args.api.startswith(("http://", "https://")):
            raise UsageError(f"--api must be an http(s) URL, got {args.api!r}")
    except InvalidOption as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2

    out.mkdir(parents=True, exist_ok=True)
    try:
        with _locked(out):
            client = ApiClient(args.api, args.api_key)
            try:
                state = State.open(out, args, source, given)
                files = list_images(source, out, args.recursive)
                run = Submit(args, client, state, source, out)
                run.plan(files)
            except (UsageError, InvalidOption) as exc:
                message = exc.message if isinstance(exc, InvalidOption) else str(exc)
                print(f"{PROG}: {message}", file=sys.stderr)
                return 2
            # usage errors first (they need no server), then whether anything answers
            try:
                client.check_reachable()
            except ClientError as exc:
                print(f"{PROG}: {exc}", file=sys.stderr)
                return 1
            try:
                return run.execute()
            except KeyboardInterrupt:
                run.interrupted()
                return 130
            except (SubmitError, ClientError) as exc:
                run.stop()
                print(f"{PROG}: {_message(exc)}", file=sys.stderr)
                print(
                    f"{PROG}: progress is saved in {state.path}; run the same command to resume",
                    file=sys.stderr,
                )
                return 1
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2


def _message(exc: Exception) -> str:
    from cutout.client import ApiError

    if isinstance(exc, ApiError) and exc.status == 401:
        return f"{exc.message} (give the key with --api-key or CUTOUT_API_KEY)"
    return str(getattr(exc, "message", None) or exc)


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One ``cutout submit`` per OUT at a time (the lock goes with the process)."""
    import fcntl

    with open(out / LOCK_NAME, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another cutout submit is using {out}") from None
        yield


def list_images(source: Path, out: Path, recursive: bool) -> list[str]:
    """Image files of ``source`` (by extension), as sorted POSIX paths relative to it.

    Hidden files and folders are skipped, and so is OUT when it lies inside DIR.
    """
    out_resolved = out.resolve()
    found: list[str] = []
    candidates = source.rglob("*") if recursive else source.iterdir()
    for path in candidates:
        relative = path.relative_to(source)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if out_resolved == path.resolve() or out_resolved in path.resolve().parents:
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            found.append(relative.as_posix())
    return sorted(found)


def output_name(name: str, extension: str) -> str:
    """``sub/photo.jpg`` → ``sub/photo.<extension>`` (like ``cutout remove``)."""
    path = Path(name)
    return (path.parent / f"{path.stem}.{extension}").as_posix()


def _new_entry() -> dict[str, Any]:
    return {
        "upload_key": None,
        "batch": None,  # index into state["batches"]
        "job_id": None,
        "status": None,  # the job's status once terminal, or "expired"
        "error": None,  # the job's error, or one of ours (upload, download, expiry)
        "bytes": None,  # size of the result, from the job object
        "downloaded": False,
    }


# -- state --------------------------------------------------------------------------------


class State:
    """``OUT/.cutout-submit.json``: the run's memory, rewritten through a temp file + rename.

    ``files[name]`` is one input's entry; ``batches[i]`` is ``{"id", "key", "files",
    "webhook_url"}``, where ``files[k]`` is item ``k``'s input and ``key`` the
    Idempotency-Key of its ``POST /v1/batches`` (saved before the request is sent, so a
    run that crashed before it saw the answer gets the same batch back).
    """

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data
        self.lock = threading.RLock()
        self._saved_at = 0.0
        self._dirty = False

    @classmethod
    def open(
        cls, out: Path, args: argparse.Namespace, source: Path, given: dict[str, object]
    ) -> State:
        """The state in OUT (checked against this command), or a new one."""
        from shared.options import parse_options

        path = out / STATE_NAME
        options = dict(given)
        if path.exists():
            try:
                data = json.loads(path.read_text())
                if data.get("version") != STATE_VERSION:
                    raise ValueError(f"version {data.get('version')!r}")
            except (OSError, ValueError) as exc:
                raise SubmitError(f"{path} cannot be read ({exc}); use another --out") from None
            if data["api"] != args.api.rstrip("/"):
                raise UsageError(
                    f"{out} belongs to a run against {data['api']}, not {args.api}; "
                    "use the same --api or another --out"
                )
            if data["source"] != str(source.resolve()):
                raise UsageError(
                    f"{out} holds results of {data['source']}; use another --out for {source}"
                )
            if data.get("recursive") != args.recursive:
                raise UsageError(
                    f"{out} was started {'with' if data.get('recursive') else 'without'} "
                    "--recursive; use the same or another --out"
                )
            # options: the state's, unless this command names others (then they must match)
            if given and parse_options(given) != parse_options(data["options"]):
                raise UsageError(
                    f"{out} was started with other options ({_describe(data['options'])}); "
                    "repeat them (or give none) to resume, or use another --out"
                )
            return cls(path, data)
        data = {
            "version": STATE_VERSION,
            "api": args.api.rstrip("/"),
            "source": str(source.resolve()),
            "recursive": args.recursive,
            "options": options,
            "run": secrets.token_hex(8),
            "files": {},
            "batches": [],
        }
        state = cls(path, data)
        state.save()
        return state

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return self.data["files"]  # type: ignore[no-any-return]

    @property
    def batches(self) -> list[dict[str, Any]]:
        return self.data["batches"]  # type: ignore[no-any-return]

    def save(self) -> None:
        """Write now (temp file, fsync, rename: a reader sees the old or the new state)."""
        with self.lock:
            text = json.dumps(self.data, indent=1, sort_keys=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            self._saved_at = time.monotonic()
            self._dirty = False

    def touch(self) -> None:
        """A per-file change: written at most every SAVE_INTERVAL (and by :meth:`flush`).

        Losing the last fraction of a second costs at most a repeated upload or download,
        never a second batch: batch creation always uses :meth:`save`.
        """
        with self.lock:
            self._dirty = True
            if time.monotonic() - self._saved_at >= SAVE_INTERVAL:
                self.save()

    def flush(self) -> None:
        with self.lock:
            if self._dirty:
                self.save()


def _describe(options: dict[str, Any]) -> str:
    if not options:
        return "no options"
    return " ".join(
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in options.items()
    )


# -- progress -----------------------------------------------------------------------------


class Progress:
    """One line on stderr: a tqdm bar on a terminal, else a plain line every few seconds."""

    PLAIN_EVERY = 5.0

    def __init__(self, label: str, total: int, initial: int, quiet: bool) -> None:
        self.label = label
        self.total = total
        self.count = initial
        self.start_count = initial
        self.started = time.monotonic()
        self.quiet = quiet
        self._printed = 0.0
        self.bar: Any = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=initial, desc=label, unit="img", file=sys.stderr, leave=True
            )

    def update(self, count: int, extra: str = "") -> None:
        delta, self.count = count - self.count, count
        if self.bar is not None:
            if extra:
                self.bar.set_postfix_str(extra, refresh=False)
            self.bar.update(delta)
        elif not self.quiet and time.monotonic() - self._printed >= self.PLAIN_EVERY:
            self.print_line(extra)

    def print_line(self, extra: str = "") -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = (self.count - self.start_count) / elapsed
        left = self.total - self.count
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        print(
            f"{PROG}: {self.label} {self.count}/{self.total}"
            + (f" ({extra})" if extra else "")
            + f", {rate:.1f} img/s, ETA {eta}",
            file=sys.stderr,
            flush=True,
        )
        self._printed = time.monotonic()

    def close(self, extra: str = "") -> None:
        if self.bar is not None:
            if extra:
                self.bar.set_postfix_str(extra, refresh=False)
            self.bar.close()
        elif not self.quiet:
            self.print_line(extra)


# -- the run ------------------------------------------------------------------------------


class Submit:
    """Plan, upload, create the batch, follow it and download, report."""

    def __init__(
        self,
        args: argparse.Namespace,
        client: ApiClient,
        state: State,
        source: Path,
        out: Path,
    ) -> None:
        from shared.options import parse_options

        self.args = args
        self.client = client
        self.state = state
        self.source = source
        self.out = out
        self.options = parse_options(state.data["options"])
        self.pool = ThreadPoolExecutor(args.concurrency, thread_name_prefix="submit")
        self.futures: set[Future[None]] = set()
        self.present: set[str] = set()
        self.progress: Progress | None = None
        self.processed_before = 0

    # -- planning -------------------------------------------------------------------

    def plan(self, names: list[str]) -> None:
        """Add new files to the state, reset failures for --retry-failed; usage checks."""
        files = self.state.files
        self.present = set(names)
        if not names and not files:
            raise UsageError(f"no image files in {self.args.dir}")
        seen: dict[str, str] = {}
        for name in sorted(set(names) | set(files)):
            target = output_name(name, self.options.extension).lower()
            if target in seen:
                raise UsageError(
                    f"{seen[target]} and {name} would both write "
                    f"{self.out / output_name(name, self.options.extension)}"
                )
            seen[target] = name
        for name in names:
            files.setdefault(name, _new_entry())
        if self.args.retry_failed:
            again = [n for n, e in files.items() if _outcome(e) == "failed" and n in self.present]
            for name in again:
                files[name] = _new_entry()
            if again:
                self._say(f"submitting {len(again)} failed image(s) again")
        for name, entry in files.items():
            if name not in self.present and entry["batch"] is None:
                entry["error"] = {"code": "missing", "message": "the file is no longer in DIR"}
        self.processed_before = sum(1 for e in files.values() if _outcome(e) != "pending")
        # a batch already created is a resume, even when a SIGKILL came before the state
        # recorded any download (the files on disk are recognised by their size later)
        if self.processed_before or self.state.batches:
            done = sum(1 for e in files.values() if _outcome(e) == "succeeded")
            self._say(f"resuming: {done} of {len(files)} results already downloaded")
        self.state.save()

    # -- the whole run --------------------------------------------------------------

    def execute(self) -> int:
        state = self.state
        # a batch whose POST was sent but whose answer was never saved: ask again, same key
        for seq, record in enumerate(state.batches):
            if record["id"] is None and record["files"]:
                self._create(seq)
        todo = [
            name
            for name, entry in sorted(state.files.items())
            # never submitted (new, or its upload failed): not a re-submission
            if entry["batch"] is None and name in self.present and entry["status"] is None
        ]
        if todo:
            # uploads of an interrupted run stay in storage: send only the others
            self._upload([n for n in todo if not state.files[n]["upload_key"]])
            ready = [n for n in todo if state.files[n]["upload_key"]]
            for start in range(0, len(ready), MAX_ITEMS):
                chunk = ready[start : start + MAX_ITEMS]
                with state.lock:
                    seq = len(state.batches)
                    state.batches.append(
                        {
                            "id": None,
                            "key": f"cutout-submit.{state.data['run']}.{seq}",
                            "files": chunk,
                            "webhook_url": self.args.webhook_url,
                        }
                    )
                    for name in chunk:
                        state.files[name]["batch"] = seq
                    state.save()  # before the request: the key must survive a crash
                self._create(seq)
        self._follow()
        return self._finish()

    def interrupted(self) -> None:
        self.stop()
        print(
            f"\n{PROG}: interrupted; progress is saved in {self.state.path}. "
            "Run the same command again to resume.",
            file=sys.stderr,
        )

    def stop(self) -> None:
        """Stop queued transfers, write the state, close the bar."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.state.flush()
        if self.progress is not None:
            self.progress.close()
            self.progress = None

    # -- uploads --------------------------------------------------------------------

    def _upload(self, names: list[str]) -> None:
        """Signed slots per content type (100 per call), then PUTs, N at a time."""
        from cutout.client import ClientError

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
        progress = Progress("upload", len(work), 0, self.args.quiet)
        self.progress = progress
        failed = 0

        def put(item: tuple[str, dict[str, Any]]) -> str | None:
            name, slot = item
            try:
                data = (self.source / name).read_bytes()
                self.client.put_upload(slot, data)
            except (OSError, ClientError) as exc:
                code = getattr(exc, "code", "read_error")
                error = {"code": code, "message": f"upload failed: {_message(exc)}"}
                with self.state.lock:
                    self.state.files[name]["error"] = error
                    self.state.touch()
                return name
            with self.state.lock:
                entry = self.state.files[name]
                entry["upload_key"] = slot["upload_key"]
                entry["error"] = None
                self.state.touch()
            return None

        for done, problem in enumerate(self.pool.map(put, work), 1):
            if problem is not None:
                failed += 1
            progress.update(done, f"{failed} failed" if failed else "")
        progress.close(f"{failed} failed" if failed else "")
        self.progress = None
        self.state.flush()
        if failed:
            self._say(f"{failed} upload(s) failed; they are listed in {REPORT_NAME}")

    def _sized(self, names: list[str]) -> list[tuple[str, int]]:
        """(name, bytes) of the files to upload; an empty or unreadable one gets its error
        here (an upload URL is signed for an exact, positive size)."""
        out = []
        for name in names:
            try:
                size = (self.source / name).stat().st_size
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
            slots = self.client.create_uploads([size for _, size in chunk], content_type)
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
        with self.state.lock:
            self.state.files[name]["error"] = {"code": code, "message": message}
            self.state.touch()
        self._say(f"{name}: not uploaded ({code}: {message})")

    # -- the batch ------------------------------------------------------------------

    def _create(self, seq: int) -> None:
        """POST the batch record ``seq`` (Idempotency-Key from the state); save its id.

        An item the API refuses (its upload vanished, too large) leaves the batch with
        its error, and the rest is sent again under a new key.
        """
        from cutout.client import ApiError

        state = self.state
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
                batch = self.client.create_batch(body, record["key"])
            except ApiError as exc:
                index = exc.problem.get("item")
                if not (
                    400 <= exc.status < 500
                    and isinstance(index, int)
                    and 0 <= index < len(record["files"])
                ):
                    raise SubmitError(f"the service refused the batch: {_message(exc)}") from None
                with state.lock:
                    name = record["files"].pop(index)
                    entry = state.files[name]
                    entry.update(batch=None, error={"code": exc.code, "message": exc.detail})
                    if exc.code == "upload_not_found":
                        entry["upload_key"] = None  # a plain re-run uploads it again
                    attempt += 1
                    record["key"] = f"cutout-submit.{state.data['run']}.{seq}.{attempt}"
                    state.save()
                self._say(f"{name}: refused ({exc.code}: {exc.detail})")
                continue
            with state.lock:
                record["id"] = batch["id"]
                state.save()
            self._say(f"batch {batch['id']}: {len(record['files'])} image(s)")
            return

    # -- following the batches, downloading -----------------------------------------

    def _open(self, seq: int) -> list[str]:
        """Inputs of batch ``seq`` that still belong to it and are not terminal yet."""
        return [
            name
            for name in self.state.batches[seq]["files"]
            if self.state.files[name]["batch"] == seq
            and self.state.files[name]["status"] not in (*TERMINAL, "expired")
        ]

    def _follow(self) -> None:
        state = self.state
        files = state.files
        total = len(files)
        self.progress = Progress("results", total, self.processed_before, self.args.quiet)
        # results that finished earlier but were not downloaded (or not recorded as such)
        for name, entry in sorted(files.items()):
            if entry["status"] == "succeeded" and not entry["downloaded"]:
                self._download(name)
        active = [
            seq for seq, record in enumerate(state.batches) if record["id"] and self._open(seq)
        ]
        marks: dict[int, tuple[str | None, int]] = {}
        seen_terminal: dict[int, int] = {}
        delay = POLL_MIN
        while True:
            changed = False
            for seq in list(active):
                record = state.batches[seq]
                batch = self._get_batch(seq)
                if batch is None:
                    active.remove(seq)
                    changed = True
                    continue
                counts = batch.get("counts") or {}
                terminal = sum(int(counts.get(k) or 0) for k in TERMINAL)
                completed = batch.get("status") == "completed"
                if terminal != seen_terminal.get(seq) or completed:
                    reached_end = self._scan(seq, record["id"], marks)
                    seen_terminal[seq] = terminal
                    changed = True
                    if completed and reached_end:
                        self._vanished(seq)
                if not self._open(seq):
                    active.remove(seq)
            self._reap()
            self._show()
            state.flush()  # so that a kill loses at most one round
            if not active and not self.futures:
                break
            delay = POLL_MIN if changed else min(POLL_MAX, delay * 1.5)
            time.sleep(delay if active else 0.1)
        self.progress.close(self._counts_text())
        self.progress = None
        state.flush()

    def _get_batch(self, seq: int) -> dict[str, Any] | None:
        """The batch object; None (and its open files marked ``expired``) if it is gone."""
        from cutout.client import ApiError

        record = self.state.batches[seq]
        try:
            return self.client.get_batch(record["id"])
        except ApiError as exc:
            if exc.status != 404:
                raise
        open_names = self._open(seq)
        message = (
            f"batch {record['id']} is no longer on the server (batches and results are "
            "kept for the service's CUTOUT_RETENTION, 7 days by default)"
        )
        with self.state.lock:
            for name in open_names:
                self.state.files[name].update(
                    status="expired", error={"code": "batch_expired", "message": message}
                )
            self.state.save()
        self._say(
            f"{message}: {len(open_names)} image(s) had not finished; "
            "run again with --retry-failed to submit them anew"
        )
        return None

    def _scan(self, seq: int, batch_id: str, marks: dict[int, tuple[str | None, int]]) -> bool:
        """Record the batch's newly terminal jobs; True when the listing's end was reached.

        Pages are filtered to terminal jobs. ``marks[seq]`` (cursor, item index) skips the
        leading items already known terminal: a full page whose items are exactly the
        next ``PAGE`` indexes moves it on.
        """
        cursor, expect = marks.get(seq, (None, 0))
        contiguous = True
        while True:
            jobs, next_cursor = self.client.batch_jobs(
                batch_id, status=",".join(TERMINAL), cursor=cursor, limit=PAGE
            )
            for job in jobs:
                self._record(seq, job)
            indexes = [job.get("item_index") for job in jobs]
            if contiguous and len(jobs) == PAGE and indexes == list(range(expect, expect + PAGE)):
                expect += PAGE
                if next_cursor:
                    marks[seq] = (next_cursor, expect)
            else:
                contiguous = False
            if not next_cursor:
                return True
            if not self._open(seq):
                return False
            cursor = next_cursor

    def _record(self, seq: int, job: dict[str, Any]) -> None:
        record = self.state.batches[seq]
        index = job.get("item_index")
        name = None
        if isinstance(index, int) and 0 <= index < len(record["files"]):
            name = record["files"][index]
        meta_name = (job.get("metadata") or {}).get("file")
        if name is None or (meta_name is not None and meta_name != name):
            name = meta_name if meta_name in self.state.files else None
        if name is None:
            return
        with self.state.lock:
            entry = self.state.files[name]
            if entry["batch"] != seq or entry["status"] in TERMINAL:
                return  # re-submitted since, or known
            entry.update(
                job_id=job["id"],
                status=job["status"],
                error=job.get("error"),
                bytes=(job.get("result") or {}).get("bytes"),
            )
            self.state.touch()
        if job["status"] == "succeeded":
            self._download(name)

    def _vanished(self, seq: int) -> None:
        """A completed batch whose listing ended without some items: their jobs are gone."""
        with self.state.lock:
            for name in self._open(seq):
                self.state.files[name].update(
                    status="failed",
                    error={"code": "not_found", "message": "the server no longer has this job"},
                )
            self.state.touch()

    def _download(self, name: str) -> None:
        entry = self.state.files[name]
        target = self.out / output_name(name, self.options.extension)
        # written whole and renamed, so a file of the right size is the result itself:
        # a run killed after the rename but before saving the state does not fetch it again
        if entry["bytes"] and target.is_file() and target.stat().st_size == entry["bytes"]:
            with self.state.lock:
                entry.update(downloaded=True, error=None)
                self.state.touch()
            return
        self.futures.add(self.pool.submit(self._fetch, name, entry["job_id"], target))

    def _fetch(self, name: str, job_id: str, target: Path) -> None:
        from cutout.client import ClientError

        try:
            self.client.download_result(job_id, target)
        except (ClientError, OSError) as exc:
            code = getattr(exc, "code", "write_error")
            with self.state.lock:
                self.state.files[name]["error"] = {
                    "code": code,
                    "message": f"download failed: {_message(exc)}",
                }
                self.state.touch()
            return
        with self.state.lock:
            self.state.files[name].update(downloaded=True, error=None)
            self.state.touch()

    def _reap(self) -> None:
        for future in [f for f in self.futures if f.done()]:
            self.futures.discard(future)
            future.result()  # _fetch records its own errors; anything else is a bug

    def _counts(self) -> tuple[int, int]:
        with self.state.lock:
            outcomes = [_outcome(e) for e in self.state.files.values()]
        return outcomes.count("succeeded"), outcomes.count("failed")

    def _counts_text(self) -> str:
        done, failed = self._counts()
        return f"{done} done, {failed} failed"

    def _show(self) -> None:
        if self.progress is not None:
            done, failed = self._counts()
            self.progress.update(done + failed, f"{done} done, {failed} failed")

    # -- the end --------------------------------------------------------------------

    def _finish(self) -> int:
        self.pool.shutdown(wait=True)
        rows = []
        failed = 0
        for name, entry in sorted(self.state.files.items()):
            outcome = _outcome(entry)
            error = entry["error"] or {}
            status = entry["status"] or ("not_submitted" if entry["batch"] is None else "pending")
            if outcome == "failed" and status == "succeeded":
                status = "not_downloaded"
            if outcome != "succeeded":
                failed += 1
            output = output_name(name, self.options.extension) if outcome == "succeeded" else ""
            rows.append(
                [
                    name,
                    entry["job_id"] or "",
                    status,
                    error.get("code") or "",
                    error.get("message") or "",
                    output,
                ]
            )
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(REPORT_COLUMNS)
        writer.writerows(rows)
        _write_atomic(self.out / REPORT_NAME, text.getvalue().encode())
        self.state.save()
        total = len(rows)
        if failed:
            self._say(
                f"{total - failed} of {total} done, {failed} failed: see "
                f"{self.out / REPORT_NAME}; --retry-failed sends them again"
            )
            return 1
        self._say(f"all {total} done: results and {REPORT_NAME} in {self.out}")
        return 0

    def _say(self, message: str) -> None:
        if self.args.quiet:
            return
        if self.progress is not None and self.progress.bar is not None:
            self.progress.bar.write(f"{PROG}: {message}", file=sys.stderr)  # keeps the bar
        else:
            print(f"{PROG}: {message}", file=sys.stderr)


def _outcome(entry: dict[str, Any]) -> str:
    """``succeeded`` (result downloaded), ``failed`` (for the report), or ``pending``."""
    if entry["status"] == "succeeded" and entry["downloaded"]:
        return "succeeded"
    if entry["status"] in FAILED or entry["error"]:
        return "failed"
    return "pending"


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        handle: IO[bytes]
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
