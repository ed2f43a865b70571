from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from core.health import health

api_v1 = [
    path("", include("customers.urls")),
    path("", include("customers.history_urls")),
    path("", include("loyalty.urls")),
    path("", include("credit.urls")),
    path("", include("segmentation.urls")),
]

admin.site.site_header = _("zenLogic — Customers")
admin.site.site_title = _("zenLogic — Customers")
admin.site.index_title = _("Back office")

handler403 = "core.backoffice.permission_denied"

urlpatterns = [
    path("health", health, name="health"),
    path("", include("django_prometheus.urls")),
    path("api/v1/", include(api_v1)),
    # The schema and its UI describe the API, not any tenant's data: served without a token so that /docs works.
    path(
        "api/schema/",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[AllowAny]),
        name="schema",
    ),
    path(
        "docs",
        SpectacularSwaggerView.as_view(
            url_name="schema", authentication_classes=[], permission_classes=[AllowAny]
        ),
        name="docs",
    ),
    path("admin/i18n/", include("django.conf.urls.i18n")),
    path("admin/dashboard/", include("segmentation.dashboard_urls")),
    path("admin/", admin.site.urls),
]
