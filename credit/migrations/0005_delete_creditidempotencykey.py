from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("credit", "0004_keys_to_records"),
    ]

    operations = [
        migrations.DeleteModel(name="CreditIdempotencyKey"),
    ]
