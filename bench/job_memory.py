"""What one job adds to a warmed worker's peak RSS, option sets side by side.

Each (input, options) pair runs in a fresh process (tests/integration/memory_probe.py, the
probe the memory tests use), so the numbers are peaks of that job alone:

    python bench/job_memory.py --input photo.jpg --size 4000 --size 7000 \\
        --options '{"model": "u2net"}' --options '{"refine": true}'

``--size N`` scales the input to N×N first (LANCZOS, JPEG 92) so the bytes per pixel can
be compared across sizes. Prints added MB and bytes per input pixel for each pair.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def probe(path: Path, options: dict[str, object]) -> dict[str, object]:
    case = json.dumps({"input": str(path), "options": options})
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.memory_probe", case],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--size", type=int, action="append", default=[])
    parser.add_argument("--options", action="append", default=[], help="JSON job options")
    args = parser.parse_args()
    option_sets = [json.loads(text) for text in args.options] or [{"model": "u2net"}]
    with tempfile.TemporaryDirectory() as tmp:
        inputs = [args.input]
        for side in args.size:
            scaled = Path(tmp) / f"{side}.jpg"
            with Image.open(args.input) as image:
                image.convert("RGB").resize((side, side), Image.Resampling.LANCZOS).save(
                    scaled, quality=92
                )
            inputs.append(scaled)
        print(f"{'input':>12} {'options':40} {'added MB':>9} {'B/px':>6} {'s':>6}")
        for path in inputs if not args.size else inputs[1:]:
            with Image.open(path) as image:
                pixels = image.width * image.height
                label = f"{image.width}x{image.height}"
            for options in option_sets:
                report = probe(path, options)
                added = int(str(report["added_kb"])) * 1024
                print(
                    f"{label:>12} {json.dumps(options):40} {added / 2**20:9.0f} "
                    f"{added / pixels:6.1f} {report['seconds']:>6}"
                )


if __name__ == "__main__":
    main()
