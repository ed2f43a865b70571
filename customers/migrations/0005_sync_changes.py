"""The CRM change feed (`CustomerSyncChange`), under Row-Level Security, started with one `created` row per customer
that exists already (so that a CRM polling from the start sees every customer once); and the index of the
cashier's lookup by the last digits of a phone."""

import django.contrib.postgres.fields
import django.contrib.postgres.indexes
import django.db.models.deletion
import django.db.models.functions.comparison
import django.db.models.functions.text
from django.db import migrations, models

from core.tenancy import EnableRowLevelSecurity


def feed_existing_customers(apps, schema_editor):
    """One `created` row per customer already there, tenant by tenant with that tenant's claim (the owner is
    subject to Row-Level Security too)."""
    from core.tenancy import scope_claim

    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT slug FROM core_tenant ORDER BY slug")
        for (slug,) in cursor.fetchall():
            cursor.execute("SELECT set_config('app.tenant_id', %s, true)", [scope_claim(slug)])
            cursor.execute(
                "INSERT INTO customers_customersyncchange (tenant_id, customer_id, action, changed_fields, occurred_at) "
                "SELECT tenant_id, id, CASE WHEN status = 'erased' THEN 'erased' ELSE 'created' END, '{}', now() "
                "FROM customers_customer WHERE tenant_id = %s ORDER BY created_at, id",
                [slug],
            )
        cursor.execute("SELECT set_config('app.tenant_id', '', true)")


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0006_delete_processedevent'),
        ('core', '0008_tenant_claims'),
        ('customers', '0004_customer_tenant_id_unique'),
    ]

    operations = [
        migrations.CreateModel(
            name='CustomerSyncChange',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('transaction_id', models.BigIntegerField(db_default=django.db.models.functions.comparison.Cast(django.db.models.functions.comparison.Cast(models.Func(function='pg_current_xact_id', output_field=models.TextField()), models.TextField()), models.BigIntegerField()))),
                ('action', models.CharField(max_length=16)),
                ('changed_fields', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=64), blank=True, default=list, size=None)),
                ('occurred_at', models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.AddIndex(
            model_name='customer',
            index=models.Index(models.F('tenant'), django.contrib.postgres.indexes.OpClass(django.db.models.functions.text.Reverse('phone'), name='text_pattern_ops'), name='customer_phone_suffix_idx'),
        ),
        migrations.AddField(
            model_name='customersyncchange',
            name='customer',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='sync_changes', to='customers.customer'),
        ),
        migrations.AddField(
            model_name='customersyncchange',
            name='tenant',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='core.tenant'),
        ),
        migrations.AddIndex(
            model_name='customersyncchange',
            index=models.Index(fields=['tenant', 'transaction_id', 'id'], name='customer_sync_position_idx'),
        ),
        EnableRowLevelSecurity("CustomerSyncChange"),
        migrations.RunPython(feed_existing_customers, migrations.RunPython.noop),
    ]
