# The consumed events' dedupe rows become idempotency records of the `events` scope, keeping every event id.
from django.db import migrations

from core.idempotency import copy_keys_into_records


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0004_idempotencyrecord"),
    ]

    operations = [
        copy_keys_into_records(
            "SELECT tenant_id, gen_random_uuid(), 'events', event_id::text, event_type, '', "
            "jsonb_build_object('outcome', outcome), processed_at FROM core_processedevent"
        ),
    ]
