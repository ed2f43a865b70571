from django.apps import AppConfig


class LoyaltyConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "loyalty"

    def ready(self) -> None:
        from loyalty import (
            demo,  # noqa: F401 - registers the app's demo data with core.demo
            handlers,  # noqa: F401 - registers the app's event handlers with core.events
        )
