from django.apps import AppConfig


class CreditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "credit"

    def ready(self) -> None:
        from credit import (
            demo,  # noqa: F401 - registers the app's demo data with core.demo
            handlers,  # noqa: F401 - registers the app's event handlers with core.events
        )
