# Credit's ledgers become append-only in the database, not only by convention: a correction is a new row.
from django.db import migrations

from core.ledgers import MakeAppendOnly


class Migration(migrations.Migration):
    dependencies = [("credit", "0005_delete_creditidempotencykey")]

    operations = [
        MakeAppendOnly("CreditLedgerEntry"),
        MakeAppendOnly("CreditLineChange"),
        MakeAppendOnly("CreditPaymentAllocation"),
    ]
