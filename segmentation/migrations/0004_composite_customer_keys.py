"""One composite foreign key (tenant_id, customer_id) -> customers (tenant_id, id) on the two tables the nightly job
writes a row per customer into, instead of one key to the tenant and one to the customer: half the checks at commit
(a first run writes a row into each for every customer), and a row can no longer name another tenant's customer.
Django keeps both relations (db_constraint=False), with their on_delete behaviour."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0006_delete_processedevent'),
        ('customers', '0004_customer_tenant_id_unique'),
        ('segmentation', '0003_lean_indexes'),
    ]

    operations = [
        migrations.AlterField(
            model_name='customersegment',
            name='customer',
            field=models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='segment', serialize=False, to='customers.customer'),
        ),
        migrations.AlterField(
            model_name='customersegment',
            name='tenant',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='core.tenant'),
        ),
        migrations.AlterField(
            model_name='segmentchange',
            name='customer',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='segment_changes', to='customers.customer'),
        ),
        migrations.AlterField(
            model_name='segmentchange',
            name='tenant',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='core.tenant'),
        ),
        migrations.RunSQL(
            sql=[
                "ALTER TABLE segmentation_customersegment ADD CONSTRAINT customer_segment_tenant_customer_fk "
                "FOREIGN KEY (tenant_id, customer_id) REFERENCES customers_customer (tenant_id, id) "
                "DEFERRABLE INITIALLY DEFERRED",
                "ALTER TABLE segmentation_segmentchange ADD CONSTRAINT segment_change_tenant_customer_fk "
                "FOREIGN KEY (tenant_id, customer_id) REFERENCES customers_customer (tenant_id, id) "
                "DEFERRABLE INITIALLY DEFERRED",
            ],
            reverse_sql=[
                "ALTER TABLE segmentation_customersegment DROP CONSTRAINT customer_segment_tenant_customer_fk",
                "ALTER TABLE segmentation_segmentchange DROP CONSTRAINT segment_change_tenant_customer_fk",
            ],
        ),
    ]
