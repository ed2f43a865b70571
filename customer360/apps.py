from django.apps import AppConfig


class Customer360Config(AppConfig):
    """The layer above the apps: what composes customers, loyalty, credit and segmentation (gRPC, the admin page)."""

    name = "customer360"
    verbose_name = "Customer 360"
