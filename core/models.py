"""Tenants, staff users, and the rows every app shares: the outbox of events and the idempotency records."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models

from core.tenancy import TenantManager


class Tenant(models.Model):
    """A business (supermarket, hardware store, café, distributor). Its slug is the token's `tenant` claim."""

    slug = models.SlugField(primary_key=True, max_length=63)
    name = models.CharField(max_length=200)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2; selects the tax document rules.")
    phone_region = models.CharField(
        max_length=2, help_text="Default region for phone numbers without +prefix."
    )
    currency = models.CharField(max_length=3, help_text="ISO 4217.")
    time_zone = models.CharField(max_length=64, default="UTC")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"


class User(AbstractUser):
    """A back-office staff user; belongs to one tenant unless superuser."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, null=True, blank=True, related_name="staff")


class TenantOwned(models.Model):
    """Base of every tenant-owned table: a `tenant_id` column that Row-Level Security filters on."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, db_index=True, related_name="+")

    objects = TenantManager()

    class Meta:
        abstract = True


class OutboxEvent(TenantOwned):
    """An event recorded in the same transaction as the change it describes; a relay publishes it later."""

    event_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=100)
    occurred_at = models.DateTimeField()
    aggregate_id = models.CharField(max_length=64, blank=True, db_index=True)
    payload = models.JSONField(help_text="The whole envelope, as published.")
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"],
                name="outbox_unpublished_idx",
                condition=models.Q(published_at__isnull=True),
            ),
        ]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class IdempotencyRecord(TenantOwned):
    """One retry-able request of any door: its key (unique per tenant and scope), payload fingerprint and first
    result. Written and read only by `core.idempotency.idempotent`.

    `scope` separates the key spaces (`loyalty`, `credit`, `events`: the same key means different things in each);
    `operation` names what the first request was, for the refusal of a reused key. An empty fingerprint is a key
    recorded before fingerprints were kept: it replays whatever payload comes.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    scope = models.CharField(max_length=32)
    key = models.CharField(max_length=200)
    operation = models.CharField(max_length=100)
    fingerprint = models.CharField(max_length=64, blank=True, help_text="sha256 of the canonical payload.")
    result = models.JSONField(default=dict, help_text="The first result, replayed to every repeat.")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "scope", "key"], name="idempotency_key_unique"),
        ]
        indexes = [models.Index(fields=["scope", "created_at"], name="idempotency_scope_time_idx")]

    def __str__(self) -> str:
        return f"{self.scope} {self.operation} {self.key}"


# The relay's after-commit hook lives in its own module; import it so the signal is connected in every process.
import core.models_events  # noqa: E402, F401

__all__ = ["IdempotencyRecord", "OutboxEvent", "Tenant", "TenantOwned", "User"]
