# The policies verify the tenant claim (core.tenancy) from here on: a database migrated before gets the scope key,
# the function and the new policies now, before any later data migration reads or writes under a claim.
from django.db import migrations


def forwards(apps, schema_editor):
    from core.database_roles import policies_current

    with schema_editor.connection.cursor() as cursor:
        policies_current(cursor)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0007_outbox_drop_pattern_indexes"),
        ("customers", "0004_customer_tenant_id_unique"),
        ("loyalty", "0007_account_qualifying_count_bounds"),
        ("credit", "0006_append_only_ledgers"),
        ("segmentation", "0006_customer_segment_fillfactor"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
