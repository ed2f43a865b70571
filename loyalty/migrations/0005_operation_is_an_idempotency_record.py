import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0004_operations_to_records"),
    ]

    operations = [
        migrations.AlterField(
            model_name="loyaltytransaction",
            name="operation",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="core.idempotencyrecord",
            ),
        ),
        migrations.AlterField(
            model_name="stampentry",
            name="operation",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="core.idempotencyrecord",
            ),
        ),
        migrations.AlterField(
            model_name="purchasereversal",
            name="operation",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to="core.idempotencyrecord"
            ),
        ),
        migrations.DeleteModel(name="LoyaltyOperation"),
    ]
