from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "segmentation"

    def ready(self) -> None:
        from segmentation import demo  # noqa: F401 - registers the app's demo data with core.demo
