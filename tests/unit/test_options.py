"""The processing options' contract: what each option accepts, its canonical stored value,
the exact InvalidOption (option named, message) for what it refuses, batch-level bases,
the allowed model names, and the stored form's round trip (old records included).

The tables were taken from the hand-written parser before it became a pydantic model,
so that the model accepts and refuses exactly what it did, with the same messages.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from shared.contract.options import OPTION_NAMES, Options, options_schema, parse_options
from shared.contract.optionvalues import Box, Margin
from shared.errors import InvalidOption

# (values given, the stored form's fields that they change; position is always shown)
ACCEPTED: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"model": " u2netp "}, {"position": None, "model": "u2netp"}),
    ({"format": "JPG", "bg_color": "#FFF000"}, {"bg_color": "#fff000ff", "format": "jpeg"}),
    ({"format": " WebP "}, {"position": None, "format": "webp"}),
    ({"mask_only": "Yes"}, {"position": None, "mask_only": True}),
    ({"crop": " on "}, {"position": None, "crop": True}),
    ({"shadow": ""}, {"position": None, "shadow": False}),
    ({"post_process": 1}, {"position": None, "post_process": True}),
    ({"alpha_matting": "t"}, {"position": None, "alpha_matting": True}),
    ({"alpha_matting_erode_size": "15"}, {"position": None, "alpha_matting_erode_size": 15}),
    ({"alpha_matting_erode_size": 15.0}, {"position": None, "alpha_matting_erode_size": 15}),
    ({"margin": " 20 "}, {"position": None, "margin": 20}),
    ({"bg_color": "#0a0b0c"}, {"bg_color": "#0a0b0cff", "position": None}),
    ({"bg_color": "0a0b0c0d"}, {"bg_color": "#0a0b0c0d", "position": None}),
    ({"bg_color": "1, 2, 3"}, {"bg_color": "#010203ff", "position": None}),
    ({"bg_color": [1, 2, 3, 4]}, {"bg_color": "#01020304", "position": None}),
    ({"bg_color": ""}, {"bg_color": None, "position": None}),
    ({"bg_color": None}, {"bg_color": None, "position": None}),
    ({"bg_color": ["1", "2", "3"]}, {"bg_color": "#010203ff", "position": None}),
    ({"canvas": " 100X50 "}, {"position": None, "canvas": "100x50"}),
    ({"canvas": ""}, {"position": None, "canvas": None}),
    ({"canvas": None}, {"position": None, "canvas": None}),
    ({"fill": "0.5"}, {"position": None, "fill": 0.5}),
    ({"fill": 1}, {"position": None, "fill": 1.0}),
    ({"score": " FULL "}, {"score": "full", "position": None}),
    ({"scale": "50%"}, {"position": "50% 50%", "scale": 0.5}),
    ({"scale": 0.25}, {"position": "50% 50%", "scale": 0.25}),
    ({"scale": "0.123456"}, {"position": "50% 50%", "scale": 0.1235}),
    ({"scale": "original"}, {"position": None, "scale": None}),
    ({"scale": ""}, {"position": None, "scale": None}),
    ({"scale": None}, {"position": None, "scale": None}),
    ({"scale": "50%", "position": "original"}, {"position": None, "scale": 0.5}),
    ({"scale": "50%", "position": None}, {"position": None, "scale": 0.5}),
    ({"position": "center"}, {"position": "50% 50%"}),
    ({"position": "Centre"}, {"position": "50% 50%"}),
    ({"position": "0% 100%"}, {"position": "0% 100%"}),
    ({"position": "25%"}, {"position": "25% 25%"}),
    ({"position": "0.3, 0.7"}, {"position": "30% 70%"}),
    ({"position": [0.2, "30%"]}, {"position": "20% 30%"}),
    ({"position": "12.34567%"}, {"position": "12.35% 12.35%"}),
    ({"crop_margin": "30px"}, {"crop_margin": "30px 30px 30px 30px", "position": None}),
    ({"crop_margin": "10px 5%"}, {"crop_margin": "10px 5% 10px 5%", "position": None}),
    ({"crop_margin": "1 2 3 4"}, {"crop_margin": "1px 2px 3px 4px", "position": None}),
    ({"crop_margin": 12}, {"crop_margin": "12px 12px 12px 12px", "position": None}),
    ({"crop_margin": 0}, {"crop_margin": None, "position": None}),
    ({"crop_margin": "0px 0%"}, {"crop_margin": None, "position": None}),
    ({"crop_margin": "1.5PX,2%"}, {"crop_margin": "1.5px 2% 1.5px 2%", "position": None}),
    ({"roi": "0% 0% 100% 100%"}, {"position": None, "roi": None}),
    ({"roi": "10px 20px 30% 40%"}, {"position": None, "roi": "10px 20px 30% 40%"}),
    ({"roi": "0 0 100% 100%"}, {"position": None, "roi": "0px 0px 100% 100%"}),
    ({"roi": "1,2,3,4"}, {"position": None, "roi": "1px 2px 3px 4px"}),
    ({"max_megapixels": "0.25"}, {"position": None, "max_megapixels": 0.25}),
    ({"max_megapixels": 1000}, {"position": None, "max_megapixels": 1000.0}),
    ({"max_megapixels": ""}, {"position": None, "max_megapixels": None}),
    ({"max_megapixels": None}, {"position": None, "max_megapixels": None}),
    (
        {"bg_image_url": " https://example.com/b.png "},
        {"bg_image_url": "https://example.com/b.png", "position": None},
    ),
    ({"bg_image_url": ""}, {"bg_image_url": None, "position": None}),
    ({"bg_upload_key": "uploads/t/upl_1"}, {"position": None, "bg_upload_key": "uploads/t/upl_1"}),
    ({"bg_upload_key": ""}, {"position": None, "bg_upload_key": None}),
    ({"format": "jpg", "mask_only": True}, {"format": "jpeg", "mask_only": True}),
]


@pytest.mark.parametrize(("values", "expected"), ACCEPTED)
def test_accepted_values_have_their_canonical_stored_form(
    values: dict[str, Any], expected: dict[str, Any]
) -> None:
    options = parse_options(values)
    got = options.stored()
    assert {name: got[name] for name in expected} == expected
    # every other field keeps its default
    defaults = Options().stored()
    assert {k: v for k, v in got.items() if k not in expected} == {
        k: v for k, v in defaults.items() if k not in expected
    }
    assert Options.from_stored(json.loads(json.dumps(got))) == options


_POSITION = "position must be original, center, or one or two percentages (0% to 100%), got "
_SCALE = "scale must be original, a percentage (10% to 100%) or 0.1 to 1, got "
_MODEL = "model must be one of u2net, u2netp or a model registered for you, got "
_COLOUR = "bg_color must be #RRGGBB, #RRGGBBAA or r,g,b[,a], got "
_KEY = "bg_upload_key must be an upload_key from POST /v1/uploads"
_MASK = "mask_only gives the mask alone: no zip, shadow or background image with it"

# (values given, the option named, the exact message)
REFUSED: list[tuple[dict[str, Any], str, str]] = [
    ({"nope": 1}, "nope", "unknown option 'nope'"),
    ({"model": "u2net_human_seg"}, "model", _MODEL + "'u2net_human_seg'"),
    ({"model": None}, "model", _MODEL + "None"),
    ({"model": "a b"}, "model", _MODEL + "'a b'"),
    ({"format": "gif"}, "format", "format must be one of png, webp, jpeg, zip, got 'gif'"),
    ({"format": None}, "format", "format must be one of png, webp, jpeg, zip, got None"),
    (
        {"mask_only": "maybe"},
        "mask_only",
        "mask_only must be a boolean (true or false), got 'maybe'",
    ),
    ({"mask_only": 2}, "mask_only", "mask_only must be a boolean (true or false), got 2"),
    ({"crop": None}, "crop", "crop must be a boolean (true or false), got None"),
    ({"shadow": 1.5}, "shadow", "shadow must be a boolean (true or false), got 1.5"),
    (
        {"alpha_matting_erode_size": 256},
        "alpha_matting_erode_size",
        "alpha_matting_erode_size must be between 0 and 255, got 256",
    ),
    (
        {"alpha_matting_foreground_threshold": "x"},
        "alpha_matting_foreground_threshold",
        "alpha_matting_foreground_threshold must be an integer, got 'x'",
    ),
    (
        {"alpha_matting_background_threshold": True},
        "alpha_matting_background_threshold",
        "alpha_matting_background_threshold must be an integer, got True",
    ),
    (
        {"alpha_matting_erode_size": 1.5},
        "alpha_matting_erode_size",
        "alpha_matting_erode_size must be an integer, got 1.5",
    ),
    (
        {"alpha_matting_erode_size": None},
        "alpha_matting_erode_size",
        "alpha_matting_erode_size must be an integer, got None",
    ),
    ({"margin": -1}, "margin", "margin must be between 0 and 10000, got -1"),
    ({"margin": 10001}, "margin", "margin must be between 0 and 10000, got 10001"),
    ({"margin": "1e3"}, "margin", "margin must be an integer, got '1e3'"),
    ({"bg_color": "red"}, "bg_color", _COLOUR + "'red'"),
    ({"bg_color": "1,2"}, "bg_color", _COLOUR + "'1,2'"),
    ({"bg_color": "1,2,300"}, "bg_color", "bg_color must be between 0 and 255, got 300"),
    ({"bg_color": [1, 2, 3, 4, 5]}, "bg_color", _COLOUR + "[1, 2, 3, 4, 5]"),
    ({"bg_color": 5}, "bg_color", _COLOUR + "5"),
    ({"bg_color": "#12345"}, "bg_color", _COLOUR + "'#12345'"),
    ({"bg_color": [1.5, 2, 3]}, "bg_color", "bg_color must be an integer, got 1.5"),
    ({"canvas": "10"}, "canvas", "canvas must be WIDTHxHEIGHT, got '10'"),
    ({"canvas": "0x10"}, "canvas", "canvas sides must be between 1 and 10000, got 0x10"),
    ({"canvas": "10001x5"}, "canvas", "canvas sides must be between 1 and 10000, got 10001x5"),
    ({"canvas": 5}, "canvas", "canvas must be WIDTHxHEIGHT, got 5"),
    ({"canvas": [10, 10]}, "canvas", "canvas must be WIDTHxHEIGHT, got [10, 10]"),
    ({"fill": "x"}, "fill", "fill must be a number, got 'x'"),
    ({"fill": 0}, "fill", "fill must be in (0, 1], got 0.0"),
    ({"fill": 1.5}, "fill", "fill must be in (0, 1], got 1.5"),
    ({"fill": None}, "fill", "fill must be a number, got None"),
    ({"fill": "nan"}, "fill", "fill must be in (0, 1], got nan"),
    ({"score": "best"}, "score", "score must be one of basic, full, got 'best'"),
    ({"score": None}, "score", "score must be one of basic, full, got None"),
    ({"scale": "5%"}, "scale", "scale must be between 10% and 100%, got '5%'"),
    ({"scale": "big"}, "scale", _SCALE + "'big'"),
    ({"scale": 2}, "scale", "scale must be between 10% and 100%, got 2"),
    ({"scale": True}, "scale", _SCALE + "True"),
    ({"scale": [1]}, "scale", _SCALE + "[1]"),
    ({"position": "150%"}, "position", _POSITION + "'150%'"),
    ({"position": "10% 20% 30%"}, "position", _POSITION + "'10% 20% 30%'"),
    ({"position": "left"}, "position", _POSITION + "'left'"),
    ({"position": [1, 2, 3]}, "position", _POSITION + "[1, 2, 3]"),
    ({"position": 5}, "position", _POSITION + "5"),
    (
        {"crop_margin": "1px 2px 3px"},
        "crop_margin",
        "crop_margin takes 1 or 2 or 4 values (each like 30px or 10%), got '1px 2px 3px'",
    ),
    ({"crop_margin": "60%"}, "crop_margin", "crop_margin: a side is at most 50% of the subject"),
    ({"crop_margin": "5em"}, "crop_margin", "crop_margin: '5em' is not a length like 30px or 10%"),
    (
        {"crop_margin": True},
        "crop_margin",
        "crop_margin takes 1 or 2 or 4 values (each like 30px or 10%), got True",
    ),
    (
        {"crop_margin": [1, 2]},
        "crop_margin",
        "crop_margin takes 1 or 2 or 4 values (each like 30px or 10%), got [1, 2]",
    ),
    (
        {"crop_margin": float("nan")},
        "crop_margin",
        "crop_margin: 'nan' is not a length like 30px or 10%",
    ),
    ({"crop_margin": -3}, "crop_margin", "crop_margin: '-3' is not a length like 30px or 10%"),
    ({"roi": "1 2 3"}, "roi", "roi takes 4 values (each like 30px or 10%), got '1 2 3'"),
    ({"roi": "0% 0% 120% 100%"}, "roi", "roi: percentages go up to 100%"),
    ({"roi": "a b c d"}, "roi", "roi: 'a' is not a length like 30px or 10%"),
    ({"roi": 5}, "roi", "roi takes 4 values (each like 30px or 10%), got 5"),
    ({"roi": "-1 0 2 2"}, "roi", "roi: '-1' is not a length like 30px or 10%"),
    (
        {"max_megapixels": "0"},
        "max_megapixels",
        "max_megapixels must be between 0.01 and 1000, got '0'",
    ),
    ({"max_megapixels": "x"}, "max_megapixels", "max_megapixels must be a number, got 'x'"),
    (
        {"max_megapixels": 2000},
        "max_megapixels",
        "max_megapixels must be between 0.01 and 1000, got 2000",
    ),
    (
        {"bg_image_url": "ftp://example.com/a.jpg"},
        "bg_image_url",
        "bg_image_url: only http and https URLs are allowed",
    ),
    (
        {"bg_image_url": "https://u:p@example.com/a.jpg"},
        "bg_image_url",
        "bg_image_url: URLs with a user name or password are not allowed",
    ),
    ({"bg_image_url": 5}, "bg_image_url", "bg_image_url must be a URL string"),
    ({"bg_upload_key": "uploads/t/../x"}, "bg_upload_key", _KEY),
    ({"bg_upload_key": 5}, "bg_upload_key", _KEY),
    ({"bg_upload_key": "u" * 1025}, "bg_upload_key", _KEY),
    (
        {"bg_color": "#fff000", "bg_image_url": "https://example.com/a"},
        "bg_image_url",
        "one background at a time: bg_color and bg_image_url were both given",
    ),
    (
        {"bg_upload_key": "uploads/t/x", "bg_image_url": "https://example.com/a"},
        "bg_upload_key",
        "one background at a time: bg_image_url and bg_upload_key were both given",
    ),
    ({"mask_only": True, "format": "zip"}, "mask_only", _MASK),
    ({"mask_only": True, "shadow": True}, "mask_only", _MASK),
    ({"mask_only": True, "bg_image_url": "https://example.com/a"}, "mask_only", _MASK),
    (
        {"format": "jpeg"},
        "format",
        "format jpeg has no alpha channel: it needs bg_color or a background image",
    ),
    (
        {"fast": True, "model": "u2netp"},
        "fast",
        "fast is only offered for u2net; u2netp loses too much quality in it",
    ),
    (
        {"refine": True, "fast": True},
        "refine",
        "refine replaces fast: it runs the exact u2net and refines the edge itself; choose one",
    ),
    (
        {"refine": True, "alpha_matting": True},
        "refine",
        "refine replaces alpha_matting: it runs the exact u2net and refines the edge itself; "
        "choose one",
    ),
]


@pytest.mark.parametrize(("values", "option", "message"), REFUSED)
def test_refused_values_name_the_option_with_a_stable_message(
    values: dict[str, Any], option: str, message: str
) -> None:
    with pytest.raises(InvalidOption) as caught:
        parse_options(values)
    assert caught.value.code == "invalid_option"
    assert caught.value.status == 422
    assert caught.value.extra["option"] == option
    assert caught.value.message == message


# -- batch-level options as a base -------------------------------------------------------


def test_a_base_supplies_defaults_and_an_item_overrides_them() -> None:
    base = parse_options({"model": "u2netp", "crop": True, "bg_color": "#ffffff"})
    item = parse_options({"crop": False, "margin": 4}, base=base)
    assert (item.model, item.crop, item.margin, item.bg_color) == (
        "u2netp",
        False,
        4,
        base.bg_color,
    )
    # the combination is checked again with the item's values
    with pytest.raises(InvalidOption) as caught:
        parse_options({"bg_image_url": "https://example.com/a"}, base=base)
    assert caught.value.extra["option"] == "bg_image_url"
    jpeg = parse_options({"format": "jpeg", "bg_color": "#ffffff"})
    with pytest.raises(InvalidOption) as caught:
        parse_options({"bg_color": ""}, base=jpeg)
    assert caught.value.extra["option"] == "format"


def test_a_base_scale_keeps_its_position_decision() -> None:
    kept = parse_options({"scale": "50%", "position": "original"})
    assert parse_options({"crop": True}, base=kept).position is None
    centred = parse_options({"scale": "50%"})
    assert parse_options({"crop": True}, base=centred).position == (0.5, 0.5)
    assert parse_options({"position": "original"}, base=centred).position is None
    # an item's scale over a base without one is centred, as on its own
    assert parse_options({"scale": "50%"}, base=parse_options({})).position == (0.5, 0.5)


# -- allowed model names ---------------------------------------------------------------------


def test_custom_model_names_come_from_the_callers_check() -> None:
    with pytest.raises(InvalidOption) as caught:
        parse_options({"model": "watches"})
    assert caught.value.message == _MODEL + "'watches'"
    allowed = parse_options({"model": "watches"}, models=lambda name: name == "watches")
    assert allowed.model == "watches"
    with pytest.raises(InvalidOption):
        parse_options({"model": "jewellery"}, models=lambda name: name == "watches")
    # a name that is not plain never reaches the check
    asked: list[str] = []
    with pytest.raises(InvalidOption):
        parse_options({"model": "../x"}, models=lambda name: asked.append(name) or True)
    assert asked == []
    # the check is per call: nothing is left behind for the next caller
    with pytest.raises(InvalidOption):
        parse_options({"model": "watches"})


# -- the stored form ------------------------------------------------------------------------


#: a job record's ``options`` as the dataclass parser stored them (jobs queued before the
#: pydantic model was deployed): they must still load, to the same values
OLD_RECORDS = [
    {
        "model": "u2netp",
        "format": "zip",
        "mask_only": False,
        "bg_color": "#102030ff",
        "post_process": False,
        "alpha_matting": True,
        "alpha_matting_foreground_threshold": 240,
        "alpha_matting_background_threshold": 10,
        "alpha_matting_erode_size": 5,
        "crop": True,
        "margin": 3,
        "canvas": "100x50",
        "fill": 0.5,
        "fast": False,
        "refine": False,
        "bg_image_url": None,
        "bg_upload_key": None,
        "shadow": True,
        "scale": 0.5,
        "position": "50% 50%",
        "crop_margin": "10px 5% 10px 5%",
        "roi": "10px 20px 30% 40%",
        "max_megapixels": 2.0,
        "score": "full",
    },
    {
        "model": "u2net",
        "format": "png",
        "mask_only": False,
        "bg_color": None,
        "post_process": False,
        "alpha_matting": False,
        "alpha_matting_foreground_threshold": 240,
        "alpha_matting_background_threshold": 10,
        "alpha_matting_erode_size": 10,
        "crop": False,
        "margin": 0,
        "canvas": None,
        "fill": 0.85,
        "fast": False,
        "refine": False,
        "bg_image_url": None,
        "bg_upload_key": "uploads/shop/upl_1",
        "shadow": False,
        "scale": None,
        "position": "0% 100%",
        "crop_margin": None,
        "roi": None,
        "max_megapixels": None,
        "score": "basic",
    },
    # older still: before score and refine existed
    {"model": "u2net", "format": "png", "scale": 0.5, "position": None, "crop": True},
]


@pytest.mark.parametrize("record", OLD_RECORDS)
def test_old_stored_records_load(record: dict[str, Any]) -> None:
    options = Options.from_stored(record)
    assert options == parse_options(record)
    assert {k: v for k, v in options.stored().items() if k in record} == record
    assert Options.from_stored(options.stored()) == options


def test_old_record_values_are_typed() -> None:
    options = Options.from_stored(OLD_RECORDS[0])
    assert options.bg_color == (16, 32, 48, 255)
    assert options.canvas == (100, 50)
    assert options.position == (0.5, 0.5)
    assert isinstance(options.roi, Box)
    assert options.roi.pixels((200, 100)) == (10, 20, 60, 40)
    assert isinstance(options.crop_margin, Margin)
    assert options.crop_margin.pixels((200, 100)) == (10, 10, 10, 10)


def test_a_stored_custom_model_loads_where_the_record_is_read() -> None:
    # the name was checked against the registry at submit; the worker resolves it again
    assert Options.from_stored({"model": "watches"}).model == "watches"
    with pytest.raises(InvalidOption):
        Options.from_stored({"model": "../x"})


# -- the stored form's round trip, over many combinations -------------------------------------
# (a seeded generator: the same 2,000 combinations on every run, every value valid alone)


def _length(rng: random.Random) -> str:
    unit = rng.choice(["px", "%", "", "PX"])
    whole = rng.randint(0, 50 if unit == "%" else 2000)
    number = rng.choice([0, whole, round(rng.uniform(0, 50), rng.randint(0, 6))])
    return f"{number}{unit}"


def _percent(rng: random.Random, low: float = 0) -> str:
    return f"{round(rng.uniform(low, 100), rng.randint(0, 6))}%"


VALUES: dict[str, Callable[[random.Random], Any]] = {
    "model": lambda r: r.choice(["u2net", "u2netp", " u2net "]),
    "format": lambda r: r.choice(["png", "webp", "zip", "PNG", "jpg"]),
    "mask_only": lambda r: r.choice([True, False, "yes", "0"]),
    "bg_color": lambda r: r.choice(
        [
            None,
            [r.randint(0, 255) for _ in range(r.choice([3, 4]))],
            "#" + "".join(f"{r.randint(0, 255):02x}" for _ in range(r.choice([3, 4]))),
            ",".join(str(r.randint(0, 255)) for _ in range(3)),
        ]
    ),
    "post_process": lambda r: r.choice([True, False]),
    "alpha_matting": lambda r: r.choice([True, False, "false"]),
    "alpha_matting_foreground_threshold": lambda r: r.randint(0, 255),
    "alpha_matting_erode_size": lambda r: str(r.randint(0, 255)),
    "crop": lambda r: r.choice([True, False]),
    "margin": lambda r: r.randint(0, 10_000),
    "canvas": lambda r: r.choice([None, f"{r.randint(1, 10_000)}x{r.randint(1, 10_000)}"]),
    "fill": lambda r: r.choice([1, round(r.uniform(0.05, 1.0), r.randint(1, 8))]),
    "shadow": lambda r: r.choice([True, False]),
    "fast": lambda r: r.choice([True, False]),
    "refine": lambda r: r.choice([True, False]),
    "scale": lambda r: r.choice(["original", r.uniform(0.1, 1.0), _percent(r, 10)]),
    "position": lambda r: r.choice(
        [
            "original",
            "center",
            None,
            _percent(r),
            f"{_percent(r)} {_percent(r)}",
            [r.uniform(0, 1), r.uniform(0, 1)],
        ]
    ),
    "crop_margin": lambda r: r.choice(
        [r.randint(0, 2000), " ".join(_length(r) for _ in range(r.choice([1, 2, 4])))]
    ),
    "roi": lambda r: r.choice([None, ", ".join(_length(r).replace("%", "px") for _ in range(4))]),
    "max_megapixels": lambda r: r.choice([None, r.uniform(0.01, 1000), "0.5"]),
    "bg_upload_key": lambda r: r.choice([None, "uploads/shop/upl_1"]),
    "bg_image_url": lambda r: r.choice([None, "https://example.com/b.png"]),
    "score": lambda r: r.choice(["basic", "full"]),
}
#: the options a combination of valid values can be refused for
COMBINATIONS = ("format", "mask_only", "bg_image_url", "bg_upload_key", "fast", "refine")


def test_stored_options_parse_back_to_the_same_model() -> None:
    rng = random.Random(28)
    loaded = 0
    refused: dict[str, str] = {}
    for _ in range(2000):
        values = {name: make(rng) for name, make in VALUES.items() if rng.random() < 0.4}
        try:
            options = parse_options(values)
        except InvalidOption as exc:
            refused[exc.extra["option"]] = exc.message
            continue
        record = json.loads(json.dumps(options.stored()))
        assert Options.from_stored(record) == options, values
        assert Options.from_stored(record).stored() == record, values
        loaded += 1
    assert set(refused) <= set(COMBINATIONS), refused
    assert loaded > 1000  # most combinations are valid: the loop tested something


# -- the JSON Schema -------------------------------------------------------------------------


def test_every_option_has_a_type_in_openapi_json() -> None:
    from api.openapi import build_document
    from cutout.apidocs import _app

    app = _app()
    with app.app_context():
        properties = build_document(app)["components"]["schemas"]["Options"]["properties"]
    assert list(properties) == list(OPTION_NAMES)
    for name, schema in properties.items():
        kinds = [schema] if "type" in schema else schema.get("anyOf", [])
        assert kinds, name
        assert all("type" in kind for kind in kinds), name


def test_stored_forms_validate_against_the_schema() -> None:
    validator = Draft202012Validator(options_schema())
    rng = random.Random(2028)
    for _ in range(300):
        values = {name: make(rng) for name, make in VALUES.items() if rng.random() < 0.4}
        try:
            options = parse_options(values)
        except InvalidOption:
            continue
        # what a job object shows (its options) is what the document promises
        assert not list(validator.iter_errors(options.stored())), options.stored()


def test_an_options_value_validated_again_is_unchanged() -> None:
    """A model that holds an ``Options`` validates it again: scale with position
    ``original`` must not be centred the second time (remove.bg's rule runs once)."""
    from pydantic import BaseModel

    class Holder(BaseModel):
        options: Options

    kept = parse_options({"scale": "50%", "position": "original"})
    assert kept.position is None
    assert Options.model_validate(kept) == kept
    assert Holder(options=kept).options == kept
    centred = parse_options({"scale": "50%"})
    assert Holder(options=centred).options.position == centred.position
