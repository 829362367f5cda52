"""``cutout tune``: fine-tune U²-Net on labelled photos of one vertical (needs the tune extra).

Exit codes: 0 tuned and registered in CUTOUT_MODEL_HOME; 2 usage (bad option, manifest,
name, no CUDA for ``--device cuda``, the tune extra missing); refused by the validation
gate (worker/tune/gate.py), nothing registered: 3 IoU fell beyond ``--tolerance-iou``, 4
boundary F1 fell beyond ``--tolerance-bf1``, 5 both, 1 neither fell but they did not both
rise; 1 also when anything else failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cutout.commands import folder_path, settings_or_exit
from worker.tune.config import LAYERS, TuneConfig
from worker.tune.gate import Tolerance

#: the pulls toward the base and the augmentation: (flag, metavar, help, what it is)
_PULL_FLAGS = (
    ("l2sp", "A", "pull toward the base's weights: A·Σ(w−w₀)²", "L2-SP"),
    ("ema", "D", "decay per step of the weights' moving average that is kept", ""),
    ("distill", "W", "the base's own map's share of the target", "distillation"),
    ("swap", "P", "probability of pasting a hard-edged subject onto another background",
     "augmentation"),
)  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="fine-tune a model on labelled photos of one product vertical",
        description="Fine-tune u2net or u2netp on labelled photos (a manifest in cutout "
        "eval's format: image, mask, category; twenty corrected photos are enough to start). "
        "By default 4-fold cross-validation inside the manifest picks the number of epochs "
        "and measures the gain on every photo with a model that did not train on it; a "
        "last run trains on all photos, and the model is registered in CUTOUT_MODEL_HOME "
        "under NAME only when it beats the base there on mean IoU and on mean boundary F1 "
        "(exit 3: IoU fell, 4: boundary F1 fell, 5: both, 1: not better in both). "
        "The defaults were measured on real photos (docs/tune.md). "
        "Needs the tune extra: pip install 'cutout[tune]'.",
        epilog="example: cutout tune --manifest corrected.csv --name horses",
    )
    parser.add_argument("--manifest", required=True, type=Path, metavar="CSV")
    parser.add_argument(
        "--base",
        default="u2net",
        choices=("u2net", "u2netp"),
        help="the model to start from (default: u2net, the service's own default; on 20 "
        "real photos it gained on held-back photos where u2netp did not: docs/tune.md)",
    )
    parser.add_argument("--name", required=True, help="the new model's name (a-z, 0-9, _ -)")
    _validation_flags(parser)
    _training_flags(parser)
    _gate_flags(parser)
    parser.add_argument("--model-home", type=folder_path, help="default: CUTOUT_MODEL_HOME")
    parser.add_argument("--record", type=Path, metavar="JSON", help="also write the record here")
    parser.set_defaults(func=handler)


def _validation_flags(parser: argparse.ArgumentParser) -> None:
    """How the tuned model is judged: K folds, a validation file, or a held-out share."""
    parser.add_argument(
        "--folds",
        type=int,
        default=TuneConfig.folds,
        metavar="K",
        help="validate by K-fold cross-validation inside the manifest: each photo judged by "
        "a run that did not train on it, then a run on all photos (default 4)",
    )
    parser.add_argument(
        "--val", type=Path, metavar="CSV", help="validation photos instead of cross-validation"
    )
    parser.add_argument(
        "--val-split",
        type=float,
        metavar="SHARE",
        help="hold out one seeded share of the manifest instead of cross-validation",
    )


def _training_flags(parser: argparse.ArgumentParser) -> None:
    """What is trained and how: layers, epochs, the pulls toward the base, the device."""
    parser.add_argument(
        "--layers",
        choices=LAYERS,
        default="decoder",
        help="what is trained: head (the side outputs and fusion: the "
        "'last layer'), last (+ the last decoder stage), decoder (+ all five decoder "
        "stages), all (default decoder)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=TuneConfig.epochs,
        help=f"most epochs per run; cross-validation picks how many ({TuneConfig.epochs})",
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, help="learning rate (default by --layers)")
    for flag, metavar, help_text, what in _PULL_FLAGS:
        default = getattr(TuneConfig, flag)
        parser.add_argument(
            f"--{flag}", type=float, default=default, metavar=metavar,
            help=f"{help_text} ({what + '; ' if what else ''}{default:g})",
        )  # fmt: skip
    edge = TuneConfig.edge_distill
    parser.add_argument(
        "--edge-distill",
        type=float,
        default=edge,
        metavar="W",
        help="the base's share of the target within 3 px (of the 320 px map) of the mask's "
        "edge: 1 keeps the base's own edges and learns only the gross errors "
        f"({'as --distill' if edge is None else f'{edge:g}'})",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    parser.add_argument(
        "--max-steps", type=int, help="stop each run after this many steps (smoke runs)"
    )


def _gate_flags(parser: argparse.ArgumentParser) -> None:
    """The validation gate's tolerances and its test-only override."""
    parser.add_argument(
        "--tolerance-iou",
        type=float,
        default=Tolerance.iou,
        metavar="X",
        help="how far below the base's mean validation IoU the model may fall (0: must rise)",
    )
    parser.add_argument(
        "--tolerance-bf1",
        type=float,
        default=Tolerance.boundary_f1,
        metavar="X",
        help="how far below the base's mean validation boundary F1 it may fall (0: must rise)",
    )
    parser.add_argument(
        "--allow-worse",
        action="store_true",
        help="register even when the validation gate refuses it (tests only)",
    )


def _check(args: argparse.Namespace) -> str | None:
    """What is wrong with the numbers given, or None."""
    if args.epochs < 1 or args.batch_size < 1 or args.folds < 2:
        return "--epochs and --batch-size must be ≥ 1, --folds ≥ 2"
    if args.val_split is not None and not 0 < args.val_split < 1:
        return "--val-split must be in (0, 1)"
    if args.val is not None and args.val_split is not None:
        return "--val and --val-split are two ways to validate: give one"
    if not (0 <= args.tolerance_iou <= 1 and 0 <= args.tolerance_bf1 <= 1):
        return "--tolerance-iou and --tolerance-bf1 must be in [0, 1]"
    if args.l2sp < 0 or not 0 <= args.ema < 1:
        return "--l2sp must be ≥ 0, --ema in [0, 1)"
    if not (0 <= args.distill <= 1 and 0 <= args.swap <= 1):
        return "--distill and --swap must be in [0, 1]"
    if args.edge_distill is not None and not 0 <= args.edge_distill <= 1:
        return "--edge-distill must be in [0, 1]"
    if args.max_steps is not None and args.max_steps < 1:
        return "--max-steps must be ≥ 1"
    return None


def handler(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("cutout tune: needs PyTorch: pip install 'cutout[tune]'", file=sys.stderr)
        return 2
    from shared.errors import ModelUnavailable
    from shared.onnx.modelfile import ModelFileError
    from worker.eval.manifest import ManifestError
    from worker.tune.record import record_json
    from worker.tune.train import TuneError, tune

    problem = _check(args)
    if problem:
        print(f"cutout tune: {problem}", file=sys.stderr)
        return 2
    home = args.model_home or settings_or_exit().model_home
    config = TuneConfig(
        manifest=args.manifest,
        base=args.base,
        name=args.name,
        home=Path(home),
        val=args.val,
        val_split=args.val_split,
        folds=args.folds,
        layers=args.layers,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        l2sp=args.l2sp,
        ema=args.ema,
        distill=args.distill,
        edge_distill=args.edge_distill,
        swap=args.swap,
        device=args.device,
        seed=args.seed,
        allow_worse=args.allow_worse,
        tolerance=Tolerance(iou=args.tolerance_iou, boundary_f1=args.tolerance_bf1),
        max_steps=args.max_steps,
        threads=args.threads,
    )
    try:
        record = tune(config)
    except (ManifestError, ModelFileError) as exc:
        print(f"cutout tune: {exc}", file=sys.stderr)
        return 2
    except TuneError as exc:
        print(f"cutout tune: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except ModelUnavailable as exc:
        print(f"cutout tune: {exc.message}", file=sys.stderr)
        return 1
    if args.record:
        args.record.write_text(record_json(record))
    print(f"{record['name']}\t{record['sha256']}")
    return 0
