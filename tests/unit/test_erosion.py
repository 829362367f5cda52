"""The trimap erosion of alpha matting: rembg's result, at a cost linear in the pixels."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from tests.conftest import ROOT
from worker.engine.matting import erode


def reference(region: np.ndarray, size: int, border: int) -> np.ndarray:
    """What rembg (and our code before) computed: scipy with a size×size structure
    (scipy's default 3×3 cross for 0)."""
    structure = np.ones((size, size), dtype=np.uint8) if size > 0 else None
    return binary_erosion(region, structure=structure, border_value=border)  # type: ignore[no-any-return]


@pytest.mark.parametrize("border", [0, 1])
def test_erosion_equals_scipy_on_random_masks(border: int) -> None:
    rng = np.random.default_rng(17 + border)
    sizes = [0, 1, 2, 3, 4, 5, 10, 11, 31, 64, 255]
    for trial in range(240):
        height, width = (int(n) for n in rng.integers(1, 70, 2))
        # dense masks (mostly true) so that erosion leaves something to compare
        region = rng.random((height, width)) < rng.uniform(0.6, 1.0)
        if trial % 3 == 0:  # blobs as well as noise: a filled rectangle
            region[:] = False
            region[height // 4 : 3 * height // 4 + 1, width // 5 : 4 * width // 5 + 1] = True
        size = sizes[trial % len(sizes)] if trial < 120 else int(rng.integers(0, 80))
        got = erode(region, size, border=border)
        assert got.dtype == bool
        np.testing.assert_array_equal(got, reference(region, size, border), err_msg=f"{size=}")


# what erode(255) may add to a fresh process's peak RSS on a 64×64 mask: scipy added
# ~100 MB at 60, ~760 MB at 100, and ran out of memory at 255
ERODE_RSS_BOUND_KB = 30_000

_CHILD = """
import json, resource, sys
import numpy as np
from worker.engine.matting import erode
region = np.ones((64, 64), bool)
erode(region, 3, border=0)  # imports and first-call buffers, before the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for size in (100, 130, 255):
    erode(region, size, border=0)
    erode(~region, size, border=1)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"added_kb": after - before}))
"""


def test_erosion_memory_does_not_grow_with_the_size() -> None:
    """The largest erode sizes in a fresh process add a few MB at most to its peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    added = json.loads(done.stdout.strip().splitlines()[-1])["added_kb"]
    assert added < ERODE_RSS_BOUND_KB, f"erosion added {added} kB of peak RSS"
