# Loyalty's operations become idempotency records of the `loyalty` scope, with the same ids (the ledger points at
# them), keys, fingerprints and first results.
from django.db import migrations

from core.idempotency import copy_keys_into_records


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0004_idempotencyrecord"),
        ("loyalty", "0003_account_next_due"),
    ]

    operations = [
        copy_keys_into_records(
            "SELECT tenant_id, id, 'loyalty', idempotency_key, kind, fingerprint, result, created_at "
            "FROM loyalty_loyaltyoperation"
        ),
    ]
