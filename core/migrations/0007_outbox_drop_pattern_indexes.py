"""Drop the two `varchar_pattern_ops` copies Django adds beside the outbox's `aggregate_id` and `tenant_id` indexes.

They serve only `LIKE 'prefix%'` searches, which nothing runs on these columns; equality, ordering and the
foreign key use the plain indexes, which stay. Every recorded event wrote an entry into each (a first RFM run
records one event per customer). Django's state is unchanged (it does not track these indexes; an alteration of
the fields later drops them with IF EXISTS)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("core", "0006_delete_processedevent")]

    operations = [
        migrations.RunSQL(
            sql=[
                "DROP INDEX IF EXISTS core_outboxevent_aggregate_id_0727ef66_like",
                "DROP INDEX IF EXISTS core_outboxevent_tenant_id_8c603f4e_like",
            ],
            reverse_sql=[
                "CREATE INDEX IF NOT EXISTS core_outboxevent_aggregate_id_0727ef66_like "
                "ON core_outboxevent (aggregate_id varchar_pattern_ops)",
                "CREATE INDEX IF NOT EXISTS core_outboxevent_tenant_id_8c603f4e_like "
                "ON core_outboxevent (tenant_id varchar_pattern_ops)",
            ],
        ),
    ]
