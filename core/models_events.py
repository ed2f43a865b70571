"""The after-commit kick of the outbox relay; a saved tenant drops the process's copy of its row.

Imported at the bottom of core/models.py so that the signal is connected in every process.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save

from core.models import OutboxEvent, Tenant


def _outbox_row_created(
    sender: type[OutboxEvent], instance: OutboxEvent, created: bool, **kwargs: object
) -> None:
    """Kick the relay once the transaction that recorded an event commits (beat is the safety net)."""
    if created and not kwargs.get("raw"):
        from core.relay import relay_kick_after_commit

        relay_kick_after_commit()


post_save.connect(_outbox_row_created, sender=OutboxEvent, dispatch_uid="core.outbox.relay_kick")


def _tenant_changed(sender: type[Tenant], instance: Tenant, **kwargs: object) -> None:
    from core.tenancy import tenant_forget

    tenant_forget(instance.slug)


post_save.connect(_tenant_changed, sender=Tenant, dispatch_uid="core.tenancy.tenant_saved")
post_delete.connect(_tenant_changed, sender=Tenant, dispatch_uid="core.tenancy.tenant_deleted")
