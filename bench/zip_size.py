"""Size of ``format=zip`` (color.jpg + alpha.png) against an RGBA PNG at 12 MP.

Data: the rembg cutouts in the ``photos/`` of the team's evaluation set (not in the
repository; ``CUTOUT_EVAL_DIR`` names its folder, bench/evalset.py): ``<name>.u2net.png``
of rembg's MIT example photos, each scaled (Lanczos, RGBA) to 4000x3000 = 12 MP, so that
the sizes are those of a real cutout at a catalogue photo's resolution. Upscaled pixels
are smoother than a camera's, which favours PNG (lossless) more than JPEG: the ratios
below are a lower bound on what zip saves on real 12 MP photos.

usage: CUTOUT_EVAL_DIR=/path/to/eval PYTHONPATH=. python bench/zip_size.py [PHOTOS_DIR]
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

from evalset import need
from PIL import Image

from worker.engine.imageio import encode_png
from worker.engine.render import encode_output

SIZE = (4000, 3000)


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else need("photos")
    rows = []
    for path in sorted(folder.glob("*.u2net.png")):
        cutout = Image.open(path).convert("RGBA").resize(SIZE, Image.Resampling.LANCZOS)
        t0 = time.perf_counter()
        ours = encode_png(cutout)
        t1 = time.perf_counter()
        buffer = io.BytesIO()
        cutout.save(buffer, "PNG")  # Pillow's defaults (zlib 6), as rembg saves
        t2 = time.perf_counter()
        archive = encode_output(cutout, "zip")
        t3 = time.perf_counter()
        rows.append((path.name, len(ours), buffer.tell(), len(archive), t1 - t0, t2 - t1, t3 - t2))
    if not rows:
        sys.exit(f"no rembg cutouts (*.u2net.png) in {folder}")
    head = ("image", "png(ours)", "png(pil6)", "zip", "ours/zip", "pil/zip")
    print(f"{head[0]:28} {head[1]:>10} {head[2]:>10} {head[3]:>10} {head[4]:>8} {head[5]:>8}")
    for name, ours, pil, archive, *_ in rows:
        ratios = f"{ours / archive:>8.2f} {pil / archive:>8.2f}"
        print(f"{name:28} {ours:>10} {pil:>10} {archive:>10} {ratios}")
    n = len(rows)
    total = [sum(r[i] for r in rows) for i in range(1, 4)]
    print(
        f"{'total (' + str(n) + ' images)':28} {total[0]:>10} {total[1]:>10} {total[2]:>10} "
        f"{total[0] / total[2]:>8.2f} {total[1] / total[2]:>8.2f}"
    )
    secs = [sum(r[i] for r in rows) / n for i in range(4, 7)]
    print(
        f"mean encode seconds: png(ours) {secs[0]:.2f}, png(pil6) {secs[1]:.2f}, zip {secs[2]:.2f}"
    )


if __name__ == "__main__":
    main()
