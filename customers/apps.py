from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CustomersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "customers"
    verbose_name = _("Customers")

    def ready(self) -> None:
        from customers import (
            demo,  # noqa: F401 - registers the app's demo data with core.demo
            handlers,  # noqa: F401 - registers the app's event handlers with core.events
        )
