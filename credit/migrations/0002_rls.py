from django.db import migrations

from core.tenancy import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("credit", "0001_initial")]

    operations = [
        EnableRowLevelSecurity(model)
        for model in (
            "CreditLine",
            "CreditLineChange",
            "CreditHold",
            "CreditCharge",
            "CreditPayment",
            "CreditPaymentAllocation",
            "CreditLedgerEntry",
            "CreditIdempotencyKey",
            "VolumeDiscountBracket",
        )
    ]
