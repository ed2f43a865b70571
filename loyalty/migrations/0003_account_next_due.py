"""Next-due dates on the account, so that an operation skips the release and expiry searches when nothing is due.

Accounts that exist already get the epoch (due): their first operation searches once and sets the real dates.
"""

from datetime import UTC, datetime

from django.db import migrations, models

DUE = datetime(1970, 1, 1, tzinfo=UTC)


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0002_rls"),
    ]

    operations = [
        migrations.AddField(
            model_name="loyaltyaccount",
            name="next_expiry_at",
            field=models.DateTimeField(
                blank=True,
                default=DUE,
                help_text="No award with points left expires before this; empty: none will.",
                null=True,
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="loyaltyaccount",
            name="next_release_at",
            field=models.DateTimeField(
                blank=True,
                default=DUE,
                help_text="No pending award is released before this; empty: none pending.",
                null=True,
            ),
            preserve_default=False,
        ),
    ]
