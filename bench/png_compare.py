"""Our PNG writer against Pillow's default (what rembg uses) and Pillow at level 1, on
rembg's own cutouts (``<name>.u2net.png`` beside the evaluation set's photos): the last
table of bench/engine.py, which calls :func:`png_comparison` with the photos' folder."""

from __future__ import annotations

import time
from pathlib import Path


def png_comparison(photos: Path) -> None:
    """Our PNG writer against Pillow's default (what rembg uses) and Pillow at level 1."""
    import io

    from PIL import Image

    from worker.engine.imageio import encode_png

    cutouts = []
    for path in sorted(photos.glob("*.u2net.png")):
        image = Image.open(path)
        image.load()
        cutouts.append(image)
    if not cutouts:
        return

    def pillow(level: int | None) -> object:
        def save(image: Image.Image) -> bytes:
            out = io.BytesIO()
            image.save(out, "PNG", **({} if level is None else {"compress_level": level}))
            return out.getvalue()

        return save

    print(f"\n== PNG encoding of {len(cutouts)} RGBA cutouts (best of 3) ==")
    for name, encode in (
        ("Pillow default (rembg)", pillow(None)),
        ("Pillow level 1", pillow(1)),
        ("ours (Up filter, zlib 1)", encode_png),
    ):
        seconds, size = 0.0, 0
        for image in cutouts:
            times = []
            for _ in range(3):
                t = time.perf_counter()
                data = encode(image)
                times.append(time.perf_counter() - t)
            seconds += min(times)
            size += len(data)
        print(f"  {name:<26}{seconds * 1000 / len(cutouts):>7.1f} ms/img{size / 1e6:>8.2f} MB")
