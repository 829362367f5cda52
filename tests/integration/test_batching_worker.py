"""CUTOUT_BATCH_SIZE=4 with the threads pool: queued jobs of one model share inference
calls, each job still ends on its own, with the pixels of an unbatched run, and a bad
image fails only its own job."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from shared.contract.options import parse_options
from shared.contract.settings import load_settings
from shared.contract.tasks import make_celery
from tests.integration.test_worker import finished, submit


def picture(i: int) -> bytes:
    """Eight different pictures of one size (so their decodes take about as long)."""
    rng = np.random.default_rng(i)
    pixels = np.full((240, 320, 3), rng.integers(150, 250, 3), np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    x, y = int(rng.integers(20, 140)), int(rng.integers(20, 90))
    draw.ellipse((x, y, x + 150, y + 130), fill=tuple(int(v) for v in rng.integers(0, 120, 3)))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def celery_app(service_env):
    return make_celery(load_settings(service_env))


def test_batched_worker_matches_unbatched_and_fails_one_job(
    store, storage, celery_app, start_worker, model_home
) -> None:
    from worker.engine import Engine

    options = {"model": "u2netp"}
    inputs = [picture(i) for i in range(7)]
    # queued before the worker starts, so its four threads take four at once
    good = [submit(store, storage, celery_app, data, options) for data in inputs[:4]]
    bad = submit(store, storage, celery_app, b"\x89PNG\r\n\x1a\n not really a png", options)
    good += [submit(store, storage, celery_app, data, options) for data in inputs[4:]]

    start_worker(
        {"CUTOUT_BATCH_SIZE": "4", "CUTOUT_WORKER_CONCURRENCY": "4", "CUTOUT_MODELS": "u2netp"},
        args=["--pool", "threads"],
    )
    jobs = [finished(store, job_id, timeout=300) for job_id in good]
    failed = finished(store, bad, timeout=300)

    assert failed.status == "failed"
    assert failed.error["code"] == "invalid_image"
    engine = Engine(model_home, threads=1)
    for data, job in zip(inputs, jobs, strict=True):
        assert job.status == "succeeded", job
        assert job.attempts == 1
        ours = np.asarray(Image.open(io.BytesIO(storage.get(job.result["key"]))))
        alone = engine.process(data, parse_options(options))
        theirs = np.asarray(Image.open(io.BytesIO(alone.data)))
        assert np.array_equal(ours, theirs)
    # Whether two jobs shared one inference call is the scheduler's business (on a loaded
    # 2-core machine they may not): the outcome asserted is that batching, when it
    # happens, changes no pixel and fails only the bad job. Batches themselves are
    # tested directly in tests/unit (BatchCollector).
