"""The request fields that jobs and batches share: ``metadata``, URLs, ``webhook_url``.

Pure checks (no Redis, no storage): each returns the accepted value or raises the
problem the client gets (``invalid_request``, ``url_not_allowed``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.contract.settings import Settings
from shared.contract.shapes.jsontext import loads
from shared.errors import InvalidRequest, UrlNotAllowed
from shared.net import address as netaddress

#: multipart form fields that are not options (every other plain field is one)
FORM_EXTRA_FIELDS = frozenset({"webhook_url", "metadata", "options"})


def form_option_values(form: Mapping[str, str]) -> dict[str, Any]:
    """A multipart form's options: the ``options`` field's JSON object, then every plain
    field that is not one of :data:`FORM_EXTRA_FIELDS` (a field wins over the object)."""
    values: dict[str, Any] = {}
    if form.get("options"):
        options_field = loads(form["options"], "the `options` field", field="options")
        if not isinstance(options_field, dict):
            raise InvalidRequest("the `options` field must be a JSON object", field="options")
        values.update(options_field)
    values.update({k: v for k, v in form.items() if k not in FORM_EXTRA_FIELDS})
    return values


def check_url(value: Any, field: str, settings: Settings) -> str:
    """An acceptable http(s) URL; UrlNotAllowed (422) saying why not.

    The shape is checked here with the worker's own SSRF guard (``shared.net.address``), and
    a literal address (``http://10.0.0.1/``, ``http://2130706433/``) is refused at once;
    names are judged where the connection is made, after DNS and on every redirect.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{field} must be a URL string", field=field)
    url = value.strip()
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        # "\ud800" in JSON parses into a str that no URL library can encode
        raise UrlNotAllowed(
            f"{field}: holds a lone UTF-16 surrogate, which is not text", field=field
        ) from None
    try:
        target = netaddress.parse_url(url)
        if target.literal is not None:
            why = netaddress.refusal(target.literal, settings.allowed_private_networks)
            if why:
                hint = netaddress.allow_hint(target.literal)
                raise UrlNotAllowed(f"the address is {why}{hint}")
    except UrlNotAllowed as exc:
        raise UrlNotAllowed(f"{field}: {exc.message}", field=field) from None
    return url


def parse_webhook(value: Any, settings: Settings) -> dict[str, Any] | None:
    """The job's ``webhook`` member for a ``webhook_url`` (None when there is none)."""
    if value is None or value == "":
        return None
    url = check_url(value, "webhook_url", settings)
    return {"url": url, "status": "pending", "attempts": 0}
