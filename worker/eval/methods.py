"""What to evaluate: the columns of the report, built from the command line.

A *method* is one way of producing an alpha for an image: a model with processing
options (optionally an eval-only refinement), or a classical baseline (GrabCut).

Command-line forms:

- ``--model M`` (repeatable): one column per model, with the options of ``--option``;
- ``--option k=v`` (repeatable): processing options (docs/api.md's names, ``-`` or ``_``)
  applied to every model column; ``--option refine=true`` instead gives each model two
  columns, ``MODEL`` (exact, refine off) and ``MODEL+refine``, so one run compares them;
- ``--variant NAME:k=v,k=v`` (repeatable): one more column per model, named
  ``MODEL+NAME``, with these options on top of ``--option``'s; a variant that sets
  ``model`` is a single column named ``NAME``;
- ``--baseline grabcut``.

Eval-only keys (not processing options, so not available in the service):
``refine=guided`` (``refine=true``/``false`` is the processing option) with
``refine_radius`` (px, default 8) and ``refine_eps`` (default 1e-4): a colour guided filter
of the model's alpha with the image as guide (see refine.py).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from shared.contract.options import ModelCheck, Options, parse_options
from shared.errors import InvalidOption

BASELINES = ("grabcut",)
REFINEMENTS = ("guided",)
#: options that change the picture's geometry or opacity, so the alpha is not comparable
#: (``roi`` keeps both: it applies, as in a job)
INCOMPARABLE = (
    "crop",
    "crop_margin",
    "canvas",
    "scale",
    "position",
    "max_megapixels",
    "shadow",
    "bg_color",
    "bg_image_url",
    "bg_upload_key",
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


@dataclasses.dataclass(frozen=True)
class Refinement:
    kind: str
    radius: int = 8
    eps: float = 1e-4


@dataclasses.dataclass(frozen=True)
class Method:
    """One column: a model with options (and maybe a refinement), or a baseline."""

    name: str
    kind: str  # "model" or "baseline"
    options: Options | None = None
    refine: Refinement | None = None

    @property
    def needs_cutout(self) -> bool:
        """Alpha matting only shows in the cutout's alpha; otherwise the mask is enough."""
        return bool(self.options and self.options.alpha_matting)

    def render_options(self) -> Options:
        """The options to render with: the mask alone unless the cutout's alpha is needed."""
        if self.options is None:
            raise ValueError(f"{self.name} is a baseline: it has no processing options")
        return self.options.model_copy(update={"mask_only": not self.needs_cutout})

    def describe(self) -> dict[str, Any]:
        """JSON form for the report: name, kind, model and the options that differ."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.options is not None:
            default = Options().stored()
            changed = {
                k: v
                for k, v in self.options.stored().items()
                if k not in ("model", "mask_only", "format") and v != default[k]
            }
            out["model"] = self.options.model
            out["options"] = changed
        if self.refine is not None:
            out["refine"] = dataclasses.asdict(self.refine)
        return out


def parse_pair(text: str) -> tuple[str, str]:
    """``k=v`` → (k, v) with dashes in k turned into underscores."""
    key, sep, value = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise InvalidOption(f"expected key=value, got {text!r}")
    return key, value.strip()


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``NAME:k=v,k=v`` → (NAME, {k: v}); ``NAME:`` is a variant with no extra options."""
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not sep or not _NAME.fullmatch(name):
        raise InvalidOption(f"expected --variant NAME:key=value,key=value, got {text!r}")
    values = dict(parse_pair(part) for part in rest.split(",") if part.strip())
    return name, values


def _split_refinement(values: dict[str, str]) -> tuple[dict[str, str], Refinement | None]:
    values = dict(values)
    kind = values.get("refine")
    if kind is not None and kind.strip().lower() in REFINEMENTS:
        kind = values.pop("refine").strip().lower()
    else:
        kind = None  # absent, or the processing option refine=true/false
    radius = values.pop("refine_radius", None)
    eps = values.pop("refine_eps", None)
    if kind is None:
        if radius is not None or eps is not None:
            raise InvalidOption("refine_radius and refine_eps need refine=guided")
        return values, None
    refine = Refinement(kind)
    try:
        if radius is not None:
            refine = dataclasses.replace(refine, radius=int(radius))
        if eps is not None:
            refine = dataclasses.replace(refine, eps=float(eps))
    except ValueError:
        raise InvalidOption(f"bad refine_radius or refine_eps: {radius!r}, {eps!r}") from None
    if not (1 <= refine.radius <= 100 and 0 < refine.eps < 1):
        raise InvalidOption("refine_radius must be 1..100 and refine_eps in (0, 1)")
    return values, refine


def _model_method(name: str, values: dict[str, str], model_check: ModelCheck | None) -> Method:
    values, refine = _split_refinement(values)
    options = parse_options(values, models=model_check)
    bad = [k for k in INCOMPARABLE if getattr(options, k)]
    if bad:
        raise InvalidOption(
            f"{', '.join(bad)} change(s) the picture's geometry or opacity, so the alpha "
            "cannot be compared with the truth; leave it out of cutout eval",
            option=bad[0],
        )
    return Method(name=name, kind="model", options=options, refine=refine)


def build_methods(
    models: list[str],
    options: list[str],
    variants: list[str],
    baselines: list[str],
    model_check: ModelCheck | None = None,
) -> list[Method]:
    """The columns, in order: each model (then its variants), standalone variants, baselines.

    With no model, no variant and no baseline, the default model (u2net) is evaluated.
    Raises InvalidOption for a bad option, variant, model, baseline or a duplicate name.
    ``model_check``: the custom model names allowed beside the built-in ones.
    """
    common = dict(parse_pair(text) for text in options)
    if "model" in common:
        raise InvalidOption("choose models with --model, not --option model=…", option="model")
    # --option refine=true: the exact column AND the refined one, side by side
    refined = common.get("refine", "").strip().lower() not in ("", *REFINEMENTS) and (
        parse_options({"refine": common["refine"]}).refine
    )
    parsed = [parse_variant(text) for text in variants]
    crossed = [(n, v) for n, v in parsed if "model" not in v]
    standalone = [(n, v) for n, v in parsed if "model" in v]
    if not models and not parsed and not baselines:
        models = [Options().model]
    methods: list[Method] = []
    for model in models:
        if refined:
            exact = {**common, "refine": "false", "model": model}
            methods.append(_model_method(model, exact, model_check))
            methods.append(
                _model_method(f"{model}+refine", {**common, "model": model}, model_check)
            )
        else:
            methods.append(_model_method(model, {**common, "model": model}, model_check))
        for name, values in crossed:
            methods.append(
                _model_method(f"{model}+{name}", {**common, **values, "model": model}, model_check)
            )
    if crossed and not models:
        raise InvalidOption("a --variant without model= needs at least one --model")
    for name, values in standalone:
        methods.append(_model_method(name, {**common, **values}, model_check))
    for baseline in baselines:
        if baseline not in BASELINES:
            raise InvalidOption(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
        methods.append(Method(name=baseline, kind="baseline"))
    names = [m.name for m in methods]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidOption(f"the same column twice: {', '.join(dupes)}")
    return methods
