from django.db import migrations

from core.tenancy import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("customers", "0001_initial")]

    operations = [
        EnableRowLevelSecurity(model)
        for model in (
            "Customer",
            "Address",
            "CustomerPreferences",
            "ChannelConsent",
            "FavouriteOrder",
            "CustomerChange",
            "Purchase",
            "PurchaseItem",
            "CustomerMetrics",
        )
    ]
