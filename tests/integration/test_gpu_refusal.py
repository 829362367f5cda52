"""A GPU worker without a usable GPU refuses to start (ONNX Runtime would silently run
on CPU): `CUTOUT_DEVICE=cuda cutout worker` exits non-zero, names the missing provider,
and never reports ready."""

from __future__ import annotations

import subprocess
import sys

import onnxruntime as ort
import pytest


def test_cuda_worker_refuses_without_cuda(service_env: dict[str, str]) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has onnxruntime with CUDA: nothing to refuse")
    env = dict(
        service_env,
        CUTOUT_DEVICE="cuda",
        CUTOUT_MODELS="u2netp",
        CUTOUT_ORT_THREADS="1",
    )
    done = subprocess.run(
        [sys.executable, "-m", "cutout", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "CUDAExecutionProvider" in done.stderr, output
    assert "CUTOUT_DEVICE" in done.stderr
    assert "ready." not in output
