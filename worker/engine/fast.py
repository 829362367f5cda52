"""Fast mode: u2net quantized to int8 with OpenVINO + NNCF, built on the user's machine.

Why this toolkit (docs/fast.md, which has the measurements): NNCF's
post-training int8 quantization of u2net run by OpenVINO is 2.1–2.4× faster than ONNX
Runtime fp32 for about −0.002 IoU; ONNX Runtime's static QDQ int8 gives about 2× for
−0.009 IoU, over our 0.005 limit. u2netp does not survive int8 (``fast`` is refused for it
in :func:`shared.contract.options.parse_options`).

The fast model is never downloaded: :func:`build_fast_model` makes it from the pinned
``u2net.onnx`` (sha256-verified by :func:`~worker.engine.models.ensure_model`), calibrated
on the project's generated set (:mod:`worker.engine.calibration`), and writes beside it a
JSON record of what went in (toolkit versions, input size, calibration set sha256, source
sha256) and what came out (sha256 of the .xml and .bin). :func:`load_fast_session` loads a
fast model only when its record matches this installation; otherwise it raises
FastModeUnavailable telling to run ``cutout models build-fast`` (workers build it at start,
never inside a request).

The pre- and post-processing are exact mode's (:class:`~worker.engine.families.U2NetFamily`),
only at :data:`FAST_INPUT_SIZE`; the toolkit (``openvino``, ``nncf``) comes with the
``fast`` extra: ``pip install 'cutout[fast]'``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import FastModeUnavailable
from worker.engine.calibration import (
    DEFAULT_COUNT,
    GENERATOR_VERSION,
    LICENCE,
    calibration_images,
    calibration_sha256,
)
from worker.engine.families import U2NetFamily
from worker.engine.models import _lock, ensure_model, file_sha256, get_spec

log = logging.getLogger("cutout.fast")

# NNCF sends usage telemetry (Google Analytics) by default when no consent file exists;
# NNCF_CI is the switch it reads (nncf/telemetry/wrapper.py, at import, used for nothing
# else). Cutout never phones home: set before nncf is imported anywhere in this process.
os.environ.setdefault("NNCF_CI", "1")

#: the model fast mode serves (the only one that survives int8, see the module doc)
SOURCE_MODEL = "u2net"
#: the square input the fast model is built for (chosen by measurement: docs/fast.md)
FAST_INPUT_SIZE = 320
#: bump when the build recipe changes, so that older records stop matching
RECIPE_VERSION = 1
INSTALL_HINT = "install the fast extra: pip install 'cutout[fast]'"


def fast_family(size: int | None = None) -> type[U2NetFamily]:
    """Exact mode's U²-Net pre/post-processing at a ``size``×``size`` input (default
    :data:`FAST_INPUT_SIZE`)."""
    size = size or FAST_INPUT_SIZE
    if size == U2NetFamily.input_size[0] == U2NetFamily.input_size[1]:
        return U2NetFamily
    return type(f"U2NetFamily{size}", (U2NetFamily,), {"input_size": (size, size)})


def toolkit_versions() -> dict[str, str]:
    """Versions of openvino and nncf; raises FastModeUnavailable when either is missing."""
    try:
        import nncf
        import openvino
    except ImportError as exc:
        raise FastModeUnavailable(
            f"fast mode needs OpenVINO and NNCF ({exc.name} is not installed); {INSTALL_HINT}"
        ) from None
    return {"openvino": openvino.get_version(), "nncf": nncf.__version__}


def available() -> bool:
    """Whether the fast extra is installed (nothing is imported beyond a check)."""
    try:
        toolkit_versions()
    except FastModeUnavailable:
        return False
    return True


def fast_paths(home: Path, size: int = FAST_INPUT_SIZE) -> tuple[Path, Path, Path]:
    """(model .xml, weights .bin, record .json) of the fast model in ``home``."""
    stem = f"{SOURCE_MODEL}-fast-int8-{size}"
    home = Path(home)
    return home / f"{stem}.xml", home / f"{stem}.bin", home / f"{stem}.json"


def expected_inputs(size: int = FAST_INPUT_SIZE, count: int = DEFAULT_COUNT) -> dict[str, Any]:
    """The record's input half for this installation: what a matching build was made from.

    The calibration hash is computed from the generated pixels (a second or two).
    """
    spec = get_spec(SOURCE_MODEL)
    return {
        "recipe": RECIPE_VERSION,
        "source_model": SOURCE_MODEL,
        "source_sha256": spec.sha256,
        "input_size": size,
        "toolkit": toolkit_versions(),
        "calibration": {
            "generator": GENERATOR_VERSION,
            "count": count,
            "sha256": _calibration_sha256(count),
            "licence": LICENCE,
        },
    }


@functools.lru_cache(maxsize=4)
def _calibration_sha256(count: int) -> str:
    return calibration_sha256(calibration_images(count))


def _outputs_sha256(xml: Path, binary: Path) -> dict[str, str]:
    return {"xml_sha256": file_sha256(xml), "bin_sha256": file_sha256(binary)}


def check_record(
    home: Path, size: int = FAST_INPUT_SIZE, expected: dict[str, Any] | None = None
) -> str | None:
    """None when the fast model in ``home`` is present, its record matches this
    installation and its files match the record's hashes; else why not."""
    xml, binary, record_path = fast_paths(home, size)
    try:
        record = json.loads(record_path.read_text())
    except FileNotFoundError:
        return "not built"
    except (OSError, ValueError) as exc:
        return f"unreadable record {record_path} ({exc})"
    expected = expected if expected is not None else expected_inputs(size)
    for key, want in expected.items():
        got = record.get(key)
        if got != want:
            return f"record {key} is {got!r}, this installation needs {want!r}"
    if not xml.exists() or not binary.exists():
        return "model files missing"
    if record.get("output") != _outputs_sha256(xml, binary):
        return "model files do not match their record's sha256"
    return None


def build_fast_model(
    home: Path,
    *,
    size: int = FAST_INPUT_SIZE,
    count: int = DEFAULT_COUNT,
    progress: bool = False,
    force: bool = False,
) -> Path:
    """Build (unless a matching one is there, or ``force``) and return the fast model's .xml.

    Fetches/verifies ``u2net.onnx`` first. Raises FastModeUnavailable without the extra,
    ModelUnavailable when the source weights cannot be had.
    """
    versions = toolkit_versions()
    home = Path(home)
    source = ensure_model(SOURCE_MODEL, home, progress=progress)
    xml, binary, record_path = fast_paths(home, size)
    expected = expected_inputs(size, count)
    with _lock(home / f".{xml.stem}.lock"):
        if not force and check_record(home, size, expected) is None:
            return xml
        started = time.monotonic()
        _say(f"fast: quantizing {source.name} to int8 at {size}×{size} ({count} images)", progress)
        import nncf
        import openvino as ov

        nncf.set_log_level(logging.ERROR)
        core = ov.Core()
        model = core.read_model(str(source))
        model.reshape({model.inputs[0].any_name: [1, 3, size, size]})
        family = fast_family(size)
        batches = [family.preprocess(image) for image in calibration_images(count)]
        quantized = nncf.quantize(
            model,
            nncf.Dataset(batches),
            subset_size=len(batches),
            preset=nncf.QuantizationPreset.PERFORMANCE,
        )
        with tempfile.TemporaryDirectory(prefix=".fast-", dir=home) as tmp:
            tmp_xml = Path(tmp) / xml.name
            ov.save_model(quantized, str(tmp_xml), compress_to_fp16=False)
            tmp_bin = tmp_xml.with_suffix(".bin")
            record = {
                **expected,
                "toolkit": versions,
                "output": _outputs_sha256(tmp_xml, tmp_bin),
                "built_seconds": round(time.monotonic() - started, 1),
            }
            tmp_record = Path(tmp) / record_path.name
            tmp_record.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
            for path in (tmp_xml, tmp_bin, tmp_record):
                os.chmod(path, 0o644)
            # the record last: a reader never sees a record naming files not yet in place
            record_path.unlink(missing_ok=True)
            os.replace(tmp_bin, binary)
            os.replace(tmp_xml, xml)
            os.replace(tmp_record, record_path)
        _say(f"fast: built {xml} in {time.monotonic() - started:.0f} s", progress)
    return xml


class _Port:
    def __init__(self, name: str) -> None:
        self.name = name


class FastSession:
    """An OpenVINO compiled fast model behind the part of ONNX Runtime's session API the
    engine uses (``run``, ``get_inputs``, ``get_outputs``, ``get_providers``).

    ``threads`` per call, as the exact session; up to ``streams`` calls from different
    Python threads run at once, each on its own infer request (OpenVINO requests are not
    shared between threads). CPU pinning is off: several worker processes share the cores.
    """

    def __init__(self, xml: Path, *, threads: int = 1, streams: int | None = None) -> None:
        import openvino as ov

        threads = max(1, int(threads))
        if streams is None:
            streams = max(1, (os.cpu_count() or 1) // threads)
        self.core = ov.Core()
        self.compiled = self.core.compile_model(
            str(xml),
            "CPU",
            {
                "INFERENCE_NUM_THREADS": threads * streams,
                "NUM_STREAMS": streams,
                "ENABLE_CPU_PINNING": False,
                "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
            },
        )
        self._input = self.compiled.inputs[0]
        self._output = self.compiled.outputs[0]
        self._local = threading.local()

    def get_inputs(self) -> list[_Port]:
        return [_Port(self._input.any_name)]

    def get_outputs(self) -> list[_Port]:
        return [_Port(self._output.any_name)]

    def get_providers(self) -> list[str]:
        return ["OpenVINO CPU (int8)"]

    def run(self, output_names: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        (batch,) = feeds.values()
        result = request.infer({0: batch})
        return [np.array(result[self._output], copy=True)]


def load_fast_session(
    home: Path, *, threads: int = 1, size: int | None = None, build: bool = False
) -> FastSession:
    """The fast session from ``home``; with ``build`` it is built first when missing or
    stale (worker start, CLI), without it a missing or stale model raises
    FastModeUnavailable saying what to run."""
    size = size or FAST_INPUT_SIZE
    if build:
        xml = build_fast_model(home, size=size)
    else:
        problem = check_record(home, size)
        if problem is not None:
            raise FastModeUnavailable(
                # no path here: the message reaches API clients as the job's error
                f"this installation's fast model is not usable ({problem}); "
                "build it with `cutout models build-fast`"
            )
        xml = fast_paths(home, size)[0]
    return FastSession(xml, threads=threads)


def _say(message: str, progress: bool) -> None:
    if progress:
        print(message, file=sys.stderr)
    else:
        log.info("%s", message)
