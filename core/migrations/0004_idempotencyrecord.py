# One idempotency record for every door (core.idempotency); Row-Level Security added by hand.
import uuid

import django.db.models.deletion
from django.db import migrations, models

from core.tenancy import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0003_processedevent"),
    ]

    operations = [
        migrations.CreateModel(
            name="IdempotencyRecord",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("scope", models.CharField(max_length=32)),
                ("key", models.CharField(max_length=200)),
                ("operation", models.CharField(max_length=100)),
                (
                    "fingerprint",
                    models.CharField(blank=True, help_text="sha256 of the canonical payload.", max_length=64),
                ),
                (
                    "result",
                    models.JSONField(default=dict, help_text="The first result, replayed to every repeat."),
                ),
                ("created_at", models.DateTimeField()),
                (
                    "tenant",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="+", to="core.tenant"
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["scope", "created_at"], name="idempotency_scope_time_idx")],
                "constraints": [
                    models.UniqueConstraint(fields=("tenant", "scope", "key"), name="idempotency_key_unique")
                ],
            },
        ),
        EnableRowLevelSecurity("IdempotencyRecord"),
    ]
