"""The layers: the API stays small and never loads the engine."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(folder: str) -> set[str]:
    names: set[str] = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_shared_imports_neither_api_nor_worker() -> None:
    assert not imported_modules("shared") & {"api", "worker", "cutout"}


def test_api_never_imports_worker() -> None:
    assert not imported_modules("api") & {"worker", "cutout", "onnxruntime", "onnx"}


def test_building_the_api_app_loads_no_engine() -> None:
    # a fresh interpreter: create the Flask app (no server needed to build it) and list
    # what got imported
    code = (
        "import sys\n"
        "from shared.contract.settings import load_settings\n"
        "from api.app import create_app\n"
        "create_app(load_settings({'CUTOUT_REDIS_URL': 'redis://127.0.0.1:1/0'}))\n"
        "heavy = [m for m in ('onnxruntime', 'onnx', 'worker', 'pymatting', 'cv2', 'scipy')\n"
        "         if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == ""
