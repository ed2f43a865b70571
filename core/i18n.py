"""The language of the REST door's error messages: `Accept-Language`, else the tenant's language, else English.

The `code` of an error never changes with the language; only `message` does. A message the catalogue holds is
translated as is; a specific one it does not hold (one with the caller's values in it) becomes its category's
translated message in another language than English, the specifics staying in `details`.
"""

from __future__ import annotations

from typing import Any

from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation.trans_real import parse_accept_lang_header
from rest_framework.response import Response

from core import api
from core.display import tenant_language
from core.errors import DomainError, UnknownTenant
from core.tenancy import tenant_cached

FALLBACK_LANGUAGE = "en"


def _spoken(code: str) -> str | None:
    try:
        return translation.get_supported_language_variant(code)
    except LookupError:
        return None


def error_language(request: Any) -> str:
    """The first language of Accept-Language this service speaks, else the caller's tenant's, else English."""
    header = request.META.get("HTTP_ACCEPT_LANGUAGE", "") if request is not None else ""
    for code, _quality in parse_accept_lang_header(header):
        if code != "*" and (language := _spoken(code)):
            return language
    # `_auth`, not `auth`: reading `auth` would authenticate again (and raise again) after a refused token.
    tenant_slug = getattr(getattr(request, "_auth", None), "tenant", None)
    if tenant_slug:
        try:
            return tenant_language(tenant_cached(tenant_slug))
        except UnknownTenant:
            pass
    return FALLBACK_LANGUAGE


def error_message(error: DomainError) -> str:
    """The error's message in the active language (see the module's docstring)."""
    message = str(error.message)
    translated = gettext(message)
    if translated != message or translation.get_language() in (None, FALLBACK_LANGUAGE):
        return translated
    for cls in type(error).__mro__:
        default = cls.__dict__.get("message")
        if isinstance(default, str) and gettext(default) != default:
            return gettext(default)
    return message


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """core.api's error bodies, with the message in the caller's language (and Content-Language saying which)."""
    language = error_language(context.get("request"))
    with translation.override(language):
        response = api.exception_handler(exc, context)
        if isinstance(exc, DomainError) and isinstance(response.data, dict):
            response.data["message"] = error_message(exc)
    response["Content-Language"] = language
    return response
