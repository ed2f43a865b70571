from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CreditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "credit"
    verbose_name = _("Credit")

    def ready(self) -> None:
        from credit import (
            demo,  # noqa: F401 - registers the app's demo data with core.demo
            handlers,  # noqa: F401 - registers the app's event handlers with core.events
        )
