"""``cutout models add|remove|push`` and the custom part of ``cutout models list``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cutout.commands import add_service_flags, folder_path, settings_or_exit


def register_custom(sub: Any) -> None:
    add = sub.add_parser(
        "add",
        help="register a model trained elsewhere (its I/O checked)",
        description="Copy FILE into CUTOUT_MODEL_HOME as custom model NAME. Its input and "
        "outputs must be U²-Net's (input.1 1×3×320×320; outputs 1959..1965), so the same "
        "pre- and post-processing apply. A record is written beside it.",
    )
    add.add_argument("name")
    add.add_argument("file", type=Path)
    add.add_argument(
        "--base",
        choices=("u2net", "u2netp"),
        default="u2net",
        help="the model it was trained from (recorded; default u2net)",
    )
    add.add_argument("--home", type=folder_path, help="model folder (default: CUTOUT_MODEL_HOME)")
    add.set_defaults(func=add_handler)
    rm = sub.add_parser("remove", help="delete a custom model and its record")
    rm.add_argument("name")
    rm.add_argument("--home", type=folder_path, help="model folder (default: CUTOUT_MODEL_HOME)")
    rm.set_defaults(func=remove_handler)
    push = sub.add_parser(
        "push",
        help="register a custom model with a running service (POST /v1/models)",
        description="Upload custom model NAME and its record to a running service; every "
        "worker then serves it as model=NAME (for your tenant, or for everyone with --global "
        "and an operator key).",
    )
    push.add_argument("name")
    add_service_flags(push)
    push.add_argument(
        "--global",
        dest="scope_global",
        action="store_true",
        help="for every tenant (needs an operator key)",
    )
    push.add_argument("--home", type=folder_path, help="model folder (default: CUTOUT_MODEL_HOME)")
    push.set_defaults(func=push_handler)


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home or settings_or_exit().model_home)


def add_handler(args: argparse.Namespace) -> int:
    import time

    from shared.onnx.modelfile import ModelFileError, sha256_of
    from worker.engine.custom import LocalModels
    from worker.engine.models import get_spec

    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"cutout models add: {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    record = {
        "name": args.name,
        "base": {"name": args.base, "sha256": get_spec(args.base).sha256},
        "sha256": sha256_of(data),
        "bytes": len(data),
        "source": {"added_from": str(args.file)},
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        LocalModels(_home(args)).add(args.name, data, record)
    except ModelFileError as exc:
        print(f"cutout models add: {exc}", file=sys.stderr)
        return 2
    print(f"{args.name}\t{record['sha256']}")
    return 0


def remove_handler(args: argparse.Namespace) -> int:
    from worker.engine.custom import LocalModels

    if not LocalModels(_home(args)).remove(args.name):
        print(f"cutout models remove: no custom model {args.name!r}", file=sys.stderr)
        return 2
    return 0


def list_custom(home: Path, *, as_json: bool) -> None:
    from worker.engine.custom import LocalModels

    store = LocalModels(home)
    records = {name: store.record(name) or {} for name in store.names()}
    if as_json:
        print(json.dumps(records, indent=2, sort_keys=True))
        return
    for name, record in records.items():
        base = (record.get("base") or {}).get("name", "?")
        val = record.get("validation") or {}
        gain = ""
        if val.get("base") and val.get("tuned"):
            gain = (
                f"val IoU {val['base']['iou']:.3f}→{val['tuned']['iou']:.3f} "
                f"BF1 {val['base']['boundary_f1']:.3f}→{val['tuned']['boundary_f1']:.3f}"
            )
        print(
            f"{name}\tcustom (base {base}, sha256 {str(record.get('sha256'))[:12]}…)\t"
            f"{gain or '-'}\t{store.path(name)}"
        )


def push_handler(args: argparse.Namespace) -> int:
    from cutout.client import ClientError
    from worker.engine.custom import LocalModels

    store = LocalModels(_home(args))
    record = store.record(args.name)
    if record is None:
        print(f"cutout models push: no custom model {args.name!r}", file=sys.stderr)
        return 2
    scope = "global" if args.scope_global else None
    try:
        status, body = push_model(args.api, args.api_key, store.path(args.name), record, scope)
    except ClientError as exc:
        print(f"cutout models push: {exc}", file=sys.stderr)
        return 1
    if status >= 300:
        print(f"cutout models push: HTTP {status}: {body.get('detail') or body}", file=sys.stderr)
        return 1
    print(f"{body['name']}\t{body['sha256']}\t{body.get('scope')}")
    return 0


def push_model(
    api: str, key: str | None, path: Path, record: dict[str, Any], scope: str | None
) -> tuple[int, dict[str, Any]]:
    """``POST /v1/models`` (multipart: ``file``, ``record``, ``scope``); (status, JSON body)."""
    import uuid

    from cutout.client import Http

    boundary = uuid.uuid4().hex
    parts: list[tuple[str, str | None, str | None, bytes]] = [
        ("record", "record.json", "application/json", json.dumps(record).encode()),
        ("file", path.name, "application/octet-stream", path.read_bytes()),
    ]
    if scope:
        parts.insert(0, ("scope", None, None, scope.encode()))
    body = b""
    for field, filename, ctype, data in parts:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"'
        if filename:
            head += f'; filename="{filename}"\r\nContent-Type: {ctype}'
        body += head.encode() + b"\r\n\r\n" + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Accept": "application/json",
    }
    if key:
        headers["Authorization"] = f"Bearer {key}"
    resp = Http(timeout=600, retries=2).request(
        "POST", api.rstrip("/") + "/v1/models", body, headers
    )
    try:
        answer = resp.json()
    except ValueError:
        answer = {"detail": resp.body[:200].decode(errors="replace")}
    return resp.status, answer
