"""``OUT/.cutout-submit.json``: what a ``cutout submit`` run did, so that it can resume."""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cutout.remove.plan import IMAGE_SUFFIXES
from cutout.submit.common import (
    LOCK_NAME,
    SAVE_INTERVAL,
    STATE_NAME,
    STATE_VERSION,
    SubmitError,
    UsageError,
)
from shared.atomicfile import atomic_write


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
        from shared.contract.options import parse_options

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
                    f"{out} was started with other options ({describe(data['options'])}); "
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
            atomic_write(self.path, text, fsync=True)
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


def describe(options: dict[str, Any]) -> str:
    if not options:
        return "no options"
    return " ".join(
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in options.items()
    )


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
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
