from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0005_processed_events_to_records"),
    ]

    operations = [
        migrations.DeleteModel(name="ProcessedEvent"),
    ]
