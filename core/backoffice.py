"""What every back-office page shares: the staff user's tenant for display (locale, time zone), and the admin's own
403 page.

The tenant's time zone is activated for each staff request, so every date the admin renders is the tenant's local
time; pages say which zone that is. A superuser (who sees every tenant) reads UTC unless a page picks a tenant.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.template import loader
from django.utils import timezone

from core.display import FALLBACK_LOCALE, tenant_locale, tz_name
from core.errors import UnknownTenant
from core.tenancy import tenant_cached

BACK_OFFICE_PREFIXES = ("/admin/",)

# Set on back-office requests of a tenant's staff; unset (superusers, other doors) means "the row's tenant's".
_display_locale: contextvars.ContextVar[str] = contextvars.ContextVar("display_locale")


def display_locale() -> str:
    """The locale money and numbers are shown in for the current request (the staff user's tenant's)."""
    return _display_locale.get(FALLBACK_LOCALE)


def staff_tenant(request: HttpRequest) -> Any:
    """The tenant of the signed-in staff user, or None (superusers, staff of no tenant, anonymous)."""
    user = getattr(request, "user", None)
    tenant_id = getattr(user, "tenant_id", None)
    if user is None or not user.is_authenticated or not tenant_id:
        return None
    try:
        return tenant_cached(tenant_id)
    except UnknownTenant:
        return None


@contextlib.contextmanager
def displayed_for(tenant: Any) -> Iterator[None]:
    """Render in `tenant`'s locale and time zone (a page about one tenant, also for a superuser)."""
    token = _display_locale.set(tenant_locale(tenant))
    timezone.activate(tz_name(tenant))
    try:
        yield
    finally:
        timezone.deactivate()
        _display_locale.reset(token)


class BackOfficeDisplayMiddleware:
    """On back-office pages: the staff user's tenant time zone and locale for everything rendered."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(BACK_OFFICE_PREFIXES):
            return self.get_response(request)
        tenant = staff_tenant(request)
        if tenant is None:
            return self.get_response(request)
        with displayed_for(tenant):
            return self.get_response(request)


def back_office(request: HttpRequest) -> dict[str, Any]:
    """Template context: the time zone the page's times are in (to label them) and the display locale."""
    return {"display_time_zone": timezone.get_current_timezone_name(), "display_locale": display_locale()}


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The 403 of the back office is the admin's own page, styled, saying what happened and offering a way back;
    elsewhere Django's plain 403."""
    if not request.path.startswith(BACK_OFFICE_PREFIXES):
        return HttpResponseForbidden(loader.render_to_string("403.html", request=request))
    context = {**admin.site.each_context(request), "title": None}
    referer = request.headers.get("Referer", "")
    host = request.get_host()
    # Only offer to go back to a page of this site.
    context["back_url"] = referer if referer and f"//{host}/" in referer else ""
    return HttpResponseForbidden(loader.render_to_string("admin/403.html", context, request=request))
