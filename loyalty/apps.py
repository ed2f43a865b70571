from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LoyaltyConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "loyalty"
    verbose_name = _("Loyalty")

    def ready(self) -> None:
        from loyalty import (
            demo,  # noqa: F401 - registers the app's demo data with core.demo
            handlers,  # noqa: F401 - registers the app's event handlers with core.events
        )
