"""A stop is not a bad correction: a worker stopped the way ``cutout up`` stops it
(SIGTERM to its process group) while it renders a corrected mask leaves the correction
``pending`` and the job's result as it was; the correction's message comes back, and the
next worker renders it (``cutout.correct_job`` is late-acknowledged, as jobs are).

The stop lands while the correction downloads the job's background image again
(``bg_image_url``), which the test serves slowly, so the run is surely in flight.
"""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from PIL import Image

from testkit.batch import photo
from tests.faults.conftest import AUTH, FaultStack
from tests.faults.test_stops import stop_like_cutout_up
from tests.integration.conftest import http, wait_for

TRICKLE_S = 3.0  # the background is served in slices over this long


class Trickle:
    """Serves ``/photo.png`` at once and ``/bg.png`` slowly; counts the latter."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = 0
        self.in_flight = 0
        backdrop = io.BytesIO()
        Image.new("RGB", (96, 72), (20, 40, 220)).save(backdrop, "PNG")
        files = {"/photo.png": photo((96, 72)), "/bg.png": backdrop.getvalue()}
        trickle = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = files[self.path]
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path != "/bg.png":
                    self.wfile.write(body)
                    return
                with trickle.lock:
                    trickle.started += 1
                    trickle.in_flight += 1
                try:
                    step = max(1, len(body) // 10)
                    for start in range(0, len(body), step):
                        self.wfile.write(body[start : start + step])
                        self.wfile.flush()
                        time.sleep(TRICKLE_S / 10)
                except OSError:
                    pass  # the worker went away mid-download
                finally:
                    with trickle.lock:
                        trickle.in_flight -= 1

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_stop_mid_correction_leaves_it_pending_and_the_next_worker_renders_it(
    stack: FaultStack,
) -> None:
    stack.workers[1].stop()  # one worker: the stop hits the one rendering
    worker = stack.workers[0]
    served = Trickle()
    try:
        options = {"model": "u2netp", "bg_image_url": served.url("/bg.png")}
        body = json.dumps({"image_url": served.url("/photo.png"), "options": options})
        status, _, raw = http(
            "POST",
            stack.url + "/v1/jobs",
            body.encode(),
            {**AUTH, "Content-Type": "application/json"},
        )
        assert status == 202, raw[:500]
        job_id = json.loads(raw)["id"]
        wait_for(lambda: stack.get(f"/v1/jobs/{job_id}")["status"] == "succeeded", 120, 0.1)
        first = http("GET", f"{stack.url}/v1/jobs/{job_id}/result", headers=AUTH)[2]

        mask = np.zeros((72, 96), np.uint8)
        mask[8:64, 52:92] = 255
        sent = io.BytesIO()
        Image.fromarray(mask).save(sent, "PNG")
        headers = {**AUTH, "Content-Type": "image/png"}
        status, _, raw = http("PUT", f"{stack.url}/v1/jobs/{job_id}/mask", sent.getvalue(), headers)
        assert status == 202, raw[:500]
        # the correction is fetching the background again: stop the worker now
        wait_for(lambda: served.started >= 2 and served.in_flight > 0, 60, 0.01)
        stop_like_cutout_up(worker)

        stopped = stack.get(f"/v1/jobs/{job_id}")
        assert stopped["correction"]["status"] == "pending", stopped["correction"]
        assert (stopped["status"], stopped["result"]["version"]) == ("succeeded", 1)
        assert http("GET", f"{stack.url}/v1/jobs/{job_id}/result", headers=AUTH)[2] == first

        stack.start_worker()
        done = wait_for(
            lambda: (
                (stack.get(f"/v1/jobs/{job_id}")["correction"] or {}).get("status") != "pending"
                and stack.get(f"/v1/jobs/{job_id}")
            ),
            240,
            0.2,
        )
        assert done["correction"]["status"] == "succeeded", done["correction"]
        assert done["result"]["version"] == 2
        newest = http("GET", f"{stack.url}/v1/jobs/{job_id}/result", headers=AUTH)[2]
        rgba = np.asarray(Image.open(io.BytesIO(newest)).convert("RGBA")).astype(int)
        assert tuple(rgba[36, 10, :3]) == (20, 40, 220)  # erased: the background image
        assert served.started >= 3  # the second worker fetched it again
    finally:
        served.close()
    logs = "".join(w.log_path.read_text(errors="replace") for w in stack.workers)
    assert "correction failed" not in logs
    assert "unexpected error while rendering a correction" not in logs
