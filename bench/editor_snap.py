"""How long the page editor's edge brush takes on a 2000x2000 photo, in Chromium.

The edge brush (api/static/snap.js, applied by api/static/maskedit.js) runs in the
browser when a stroke ends. This serves api/static on a loopback port, opens it in
Debian's chromium (headless, as tests/e2e does), builds a 2000x2000 photo with edges
(a disc, bars and noise), and times, as the page does them:

- ``snapRegion`` alone on three footprints: a brush of 40 px drawn 600 px long, of 120 px
  drawn 1500 px long (the slider's middle and top), and the whole photo (the worst case);
- the whole stroke through ``MaskModel`` (dabs, footprint read back, the region, the mask
  written back and the undo copies) for the 120 px x 1500 px stroke, and the first such
  stroke on a newly opened photo (which also copies the photo's pixels once);
- opening: ``MaskModel`` set up on a 2000x2000 mask (what the editor does once the photo
  and the starting mask are decoded).

Each timing is the median of 7 runs after 2 warm-up runs; ``performance.now()``.

    python bench/editor_snap.py      # CUTOUT_CHROMIUM: another chromium
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "api" / "static"

# as tests/e2e runs it: headless, no sandbox, nothing that reaches other hosts
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
]
SCRIPT = """
async () => {
  const { snapRegion } = await import("/snap.js");
  const { MaskModel } = await import("/maskedit.js");
  const W = 2000, H = 2000;
  const photo = document.createElement("canvas");
  photo.width = W; photo.height = H;
  const ctx = photo.getContext("2d");
  ctx.fillStyle = "#d6dae0"; ctx.fillRect(0, 0, W, H);
  ctx.fillStyle = "#c4302a"; ctx.beginPath(); ctx.arc(1000, 1000, 600, 0, Math.PI * 2); ctx.fill();
  ctx.fillStyle = "#203040"; for (let x = 100; x < W; x += 300) ctx.fillRect(x, 0, 40, H);
  const image = ctx.getImageData(0, 0, W, H);
  for (let i = 0; i < image.data.length; i += 4) {
    const n = (Math.random() - 0.5) * 12;
    image.data[i] += n; image.data[i + 1] += n; image.data[i + 2] += n;
  }
  ctx.putImageData(image, 0, 0);
  const rgba = image.data;
  const median = (f) => {
    for (let i = 0; i < 2; i++) f();
    const times = [];
    for (let i = 0; i < 7; i++) {
      // f may time itself (a number back), else the whole call is timed
      const t = performance.now(); const own = f(); const end = performance.now();
      times.push(typeof own === "number" ? own : end - t);
    }
    times.sort((a, b) => a - b);
    return times[3];
  };
  // a stroke's footprint and centre line in its own box
  const stroke = (size, length) => {
    const r = size / 2, x0 = 400, y0 = 1000;
    const w = Math.ceil(length + size + 2), h = Math.ceil(size + 2);
    const box = new Uint8ClampedArray(w * h * 4);
    for (let y = 0; y < h; y++) {
      const from = ((y0 - r - 1 + y) * W + x0 - r - 1) * 4;
      box.set(rgba.subarray(from, from + w * 4), y * w * 4);
    }
    const footprint = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const dx = Math.max(0, Math.max(r + 1 - x, x - (r + 1 + length)));
      footprint[y * w + x] = dx * dx + (y - r - 1) ** 2 <= r * r ? 1 : 0;
    }
    const seeds = [];
    for (let x = 0; x <= length; x++) seeds.push(Math.round(r + 1) * w + Math.round(r + 1 + x));
    return { box, w, h, footprint, seeds };
  };
  const out = {};
  for (const [size, length] of [[40, 600], [120, 1500]]) {
    const s = stroke(size, length);
    out[`snapRegion ${size}px x ${length}px (ms)`] =
      median(() => snapRegion(s.box, s.w, s.h, s.footprint, s.seeds));
  }
  const all = new Uint8Array(W * H).fill(1);
  const seeds = []; for (let x = 0; x < W; x++) seeds.push(1000 * W + x);
  out["snapRegion whole 2000x2000 (ms)"] = median(() => snapRegion(rgba, W, H, all, seeds));
  const alpha = new Uint8ClampedArray(W * H).fill(255);
  out["open: MaskModel on a 2000x2000 mask (ms)"] =
    median(() => new MaskModel(photo, alpha, () => {}));
  out["first snap stroke on a photo, 120px x 1500px (ms)"] = median(() => {
    const fresh = new MaskModel(photo, alpha, () => {});
    const t = performance.now();
    fresh.begin({ mode: "erase", size: 120, softness: 0, snap: true }, 250, 1000);
    for (let x = 250; x <= 1750; x += 15) fresh.move(x, 1000);
    fresh.end();
    return performance.now() - t;
  });
  const model = new MaskModel(photo, alpha, () => {});
  out["whole stroke 120px x 1500px through MaskModel (ms)"] = median(() => {
    model.begin({ mode: "erase", size: 120, softness: 0, snap: true }, 250, 1000);
    for (let x = 250; x <= 1750; x += 15) model.move(x, 1000);
    model.end();
  });
  return out;
}
"""


class Handler(http.server.SimpleHTTPRequestHandler):
    """api/static's files, and /bench.html: an empty page on the same origin."""

    def do_GET(self) -> None:
        if self.path != "/bench.html":
            return super().do_GET()
        body = b"<!doctype html><title>bench</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    from playwright.sync_api import sync_playwright

    handler = functools.partial(Handler, directory=str(STATIC))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=os.environ.get("CUTOUT_CHROMIUM") or shutil.which("chromium"),
                headless=True,
                args=CHROMIUM_ARGS,
            )
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_port}/bench.html")
            result = page.evaluate(SCRIPT)
            browser.close()
    finally:
        server.shutdown()
    print(json.dumps({k: round(v, 1) for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main()
