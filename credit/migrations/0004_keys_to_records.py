# Credit's idempotency keys become idempotency records of the `credit` scope, keeping every key and its answer.
from django.db import migrations

from core.idempotency import copy_keys_into_records


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0004_idempotencyrecord"),
        ("credit", "0003_credit_managers_group"),
    ]

    operations = [
        copy_keys_into_records(
            "SELECT tenant_id, gen_random_uuid(), 'credit', key, operation, fingerprint, response, created_at "
            "FROM credit_creditidempotencykey"
        ),
    ]
