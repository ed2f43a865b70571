from django.apps import AppConfig


class CoreConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "core"

    def ready(self) -> None:
        import core.schema  # noqa: F401  (registers the OpenAPI authentication extension)
        from core.metrics import metrics_register

        metrics_register()
