# The ledgers keep their append-only guard, now created by core's one operation (the same for every app's ledgers).
from django.db import migrations

from core.ledgers import MakeAppendOnly

LEDGERS = ("LoyaltyTransaction", "AwardAllocation", "PurchaseReversal", "TierChange", "StampEntry")


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0005_operation_is_an_idempotency_record")]

    operations = [
        *(MakeAppendOnly(model) for model in LEDGERS),
        # the triggers above replaced the ones that called loyalty's own copy of the function
        migrations.RunSQL("DROP FUNCTION IF EXISTS loyalty_refuse_change();", migrations.RunSQL.noop),
    ]
