"""Fast mode without the model: the generated calibration set, the family at another
input size, and the record check that decides whether a built fast model may be used."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from shared.errors import FastModeUnavailable
from worker.engine import calibration
from worker.engine.families import U2NetFamily


def test_calibration_set_is_the_same_on_every_call() -> None:
    first = calibration.calibration_images(6)
    second = calibration.calibration_images(6)
    assert calibration.calibration_sha256(first) == calibration.calibration_sha256(second)
    assert all(image.size == (320, 320) and image.mode == "RGB" for image in first)
    # different pictures, not one picture six times
    assert len({image.tobytes() for image in first}) == 6
    assert calibration.calibration_sha256(first[:5]) != calibration.calibration_sha256(first)


def test_calibration_pictures_have_an_object_on_a_backdrop() -> None:
    for image in calibration.calibration_images(8):
        pixels = np.asarray(image, dtype=np.float32)
        assert pixels.std() > 10  # not a flat frame
        assert pixels.min() >= 0
        assert pixels.max() <= 255


def test_fast_family_changes_only_the_input_size() -> None:
    from worker.engine.fast import fast_family

    assert fast_family(320) is U2NetFamily
    small = fast_family(256)
    assert small.input_size == (256, 256)
    assert small.mean == U2NetFamily.mean
    assert small.std == U2NetFamily.std
    image = calibration.calibration_image(0)
    assert small.preprocess(image).shape == (1, 3, 256, 256)


def test_without_the_extra_fast_mode_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.engine import fast

    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    assert not fast.available()
    with pytest.raises(FastModeUnavailable, match=r"pip install 'cutout\[fast\]'"):
        fast.toolkit_versions()


openvino = pytest.importorskip("openvino", reason="the fast extra is not installed")
pytest.importorskip("nncf", reason="the fast extra is not installed")


def _fake_build(home: Path) -> dict:
    """Files and a matching record as build_fast_model writes them (no quantization)."""
    from worker.engine import fast

    xml, binary, record_path = fast.fast_paths(home)
    xml.write_text("<net/>")
    binary.write_bytes(b"\0" * 64)
    record = {**fast.expected_inputs(), "output": fast._outputs_sha256(xml, binary)}
    record_path.write_text(json.dumps(record))
    return record


def test_a_matching_record_is_accepted(tmp_path: Path) -> None:
    from worker.engine import fast

    _fake_build(tmp_path)
    assert fast.check_record(tmp_path) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r["toolkit"].update(openvino="2023.0.0"), "toolkit"),
        (lambda r: r["toolkit"].update(nncf="2.0.0"), "toolkit"),
        (lambda r: r.update(source_sha256="0" * 64), "source_sha256"),
        (lambda r: r.update(input_size=256), "input_size"),
        (lambda r: r["calibration"].update(sha256="f" * 64), "calibration"),
        (lambda r: r.update(recipe=0), "recipe"),
    ],
)
def test_a_mismatched_record_is_refused(tmp_path: Path, change, reason: str) -> None:  # type: ignore[no-untyped-def]
    from worker.engine import fast

    record = _fake_build(tmp_path)
    change(record)
    fast.fast_paths(tmp_path)[2].write_text(json.dumps(record))
    problem = fast.check_record(tmp_path)
    assert problem is not None
    assert reason in problem
    with pytest.raises(FastModeUnavailable, match="cutout models build-fast"):
        fast.load_fast_session(tmp_path)


def test_model_files_that_differ_from_their_record_are_refused(tmp_path: Path) -> None:
    from worker.engine import fast

    _fake_build(tmp_path)
    fast.fast_paths(tmp_path)[1].write_bytes(b"\1" * 64)
    assert fast.check_record(tmp_path) == "model files do not match their record's sha256"


def test_nothing_built_is_refused_clearly(tmp_path: Path) -> None:
    from shared.contract.options import Options
    from worker.engine import Engine, fast

    assert fast.check_record(tmp_path) == "not built"
    with pytest.raises(FastModeUnavailable, match="not built"):
        Engine(tmp_path).render(calibration.calibration_image(0), Options(fast=True))
