"""The processing options of docs/api.md as command-line flags, shared by ``cutout
remove`` (on this machine) and ``cutout submit`` (to a service)."""

from __future__ import annotations

import argparse

from shared.contract.options import SCORES

# flag → option name (shared.contract.options); every option of docs/api.md
_VALUE_OPTIONS = {
    "model": "model",
    "format": "format",
    "bg_color": "bg_color",
    "alpha_matting_foreground_threshold": "alpha_matting_foreground_threshold",
    "alpha_matting_background_threshold": "alpha_matting_background_threshold",
    "alpha_matting_erode_size": "alpha_matting_erode_size",
    "margin": "margin",
    "canvas": "canvas",
    "fill": "fill",
    **{name: name for name in ("bg_image_url", "bg_upload_key", "scale", "position")},
    **{name: name for name in ("crop_margin", "roi", "max_megapixels")},
    "score": "score",
}
_FLAG_OPTIONS = ("mask_only", "post_process", "alpha_matting", "crop", "fast", "shadow", "refine")


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """The processing options of docs/api.md as flags (shared with ``cutout submit``)."""
    group = parser.add_argument_group("processing options (docs/api.md)")
    group.add_argument(
        "-m", "--model", help="u2net (default), u2netp, or a custom model (cutout models list)"
    )
    group.add_argument(
        "-f", "--format", help="png (default), webp, jpeg (needs a background) or zip"
    )
    group.add_argument("--bg-color", "-bgc", help="#RRGGBB, #RRGGBBAA or r,g,b[,a]")
    group.add_argument("--mask-only", "-om", action="store_true", help="the 8-bit mask only")
    group.add_argument("--post-process", "-ppm", action="store_true", help="smooth the mask")
    _matting_flags(group)
    group.add_argument("--crop", action="store_true", help="crop to the subject")
    group.add_argument("--margin", metavar="PX", help="pixels kept around the subject")
    group.add_argument("--canvas", metavar="WxH", help="place the subject on a canvas")
    group.add_argument("--fill", metavar="F", help="share of the canvas the subject fills")
    _engine_flags(group)
    add_catalogue_flags(group)


def _matting_flags(group: argparse._ArgumentGroup) -> None:
    """rembg's alpha matting and its trimap's three numbers."""
    group.add_argument(
        "--alpha-matting",
        "-a",
        action="store_true",
        help="rembg's alpha matting: the mask becomes a trimap (sure foreground, sure "
        "background, unknown between) and pymatting's closed-form matting solves the "
        "unknown band from the photo's colours (soft hair and fur; 2-3x the time)",
    )
    group.add_argument(
        "--alpha-matting-foreground-threshold",
        "-af",
        metavar="N",
        help="trimap: mask values above N (0-255) are sure foreground (default 240)",
    )
    group.add_argument(
        "--alpha-matting-background-threshold",
        "-ab",
        metavar="N",
        help="trimap: mask values below N (0-255) are sure background (default 10)",
    )
    group.add_argument(
        "--alpha-matting-erode-size",
        "-ae",
        metavar="N",
        help="trimap: both sure regions shrink by N px, widening the band (default 10)",
    )


def _engine_flags(group: argparse._ArgumentGroup) -> None:
    """Cutout's own choices beyond rembg's: the int8 model, edge refinement, the score."""
    group.add_argument(
        "--fast",
        action="store_true",
        help="int8 u2net: about 2x faster, a slightly different cutout (needs the fast extra)",
    )
    group.add_argument(
        "--refine",
        action="store_true",
        help="Cutout's own edge refinement, not rembg's (docs/refine.md): the mask's edge "
        "fitted to the photo's edges at full size, stray specks removed, edge colours "
        "cleaned of the old background; about 1.1x the time; not with --alpha-matting or "
        "--fast",
    )
    group.add_argument(
        "--score",
        choices=SCORES,
        help="how each cutout's quality score is made: basic (default) from the model's "
        "own map, almost free; full adds a second model's opinion on the mirrored photo, "
        "about 1.4x the CPU (docs/quality.md has what each measured); the cutout's pixels "
        "are the same either way",
    )


def add_catalogue_flags(group: argparse._ArgumentGroup) -> None:
    """The catalogue options of issue 16 (docs/api.md)."""
    group.add_argument("--bg-image-url", metavar="URL", help="a background image, scaled to cover")
    group.add_argument("--bg-upload-key", metavar="KEY", help="a background from POST /v1/uploads")
    group.add_argument("--shadow", action="store_true", help="a soft drop shadow under the subject")
    group.add_argument("--scale", metavar="PCT", help="subject's share of the canvas, 10%%-100%%")
    group.add_argument("--position", metavar="POS", help="center, or 'X%% Y%%' of the free space")
    group.add_argument("--crop-margin", metavar="M", help="with --crop: 30px, 10%% or 2/4 values")
    group.add_argument("--roi", metavar="BOX", help="'x1 y1 x2 y2' (px or %%): only there")
    group.add_argument("--max-megapixels", metavar="MP", help="downscale the input to this size")


def option_values(args: argparse.Namespace) -> dict[str, object]:
    """The options given by :func:`add_option_flags`' flags (unset ones left out)."""
    values: dict[str, object] = {}
    for attr, name in _VALUE_OPTIONS.items():
        value = getattr(args, attr)
        if value is not None:
            values[name] = value
    for name in _FLAG_OPTIONS:
        if getattr(args, name):
            values[name] = True
    return values
