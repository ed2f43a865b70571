"""The per-tenant loop of the periodic tasks: every tenant, each item in its own tenant transaction, failures
counted and logged without stopping the rest."""

from __future__ import annotations

from typing import Any

import pytest

from core.tasks import for_each_tenant
from core.tenancy import current_tenant_slug

pytestmark = pytest.mark.django_db(transaction=True)


def test_each_item_runs_in_its_tenant_and_failures_are_counted(
    tenant_a: Any, tenant_b: Any, caplog: Any
) -> None:
    listed_in: list[str | None] = []

    def candidates(tenant: Any) -> list[str]:
        listed_in.append(current_tenant_slug())
        if tenant.slug == "tenant-b":
            raise RuntimeError("listing broke")
        return ["one", "boom", "two"]

    def process(item: str) -> tuple[str, str | None]:
        if item == "boom":
            raise ValueError("this item broke")
        return item, current_tenant_slug()

    runs = for_each_tenant("test job", candidates, process)

    assert listed_in == ["tenant-a", "tenant-b"]
    assert runs == {
        "tenant-a": ([("one", "tenant-a"), ("two", "tenant-a")], 1),
        "tenant-b": ([], 1),
    }
    assert "test job failed for boom of tenant tenant-a" in caplog.text
    assert "test job: could not list what is due for tenant tenant-b" in caplog.text


def test_a_job_kicks_the_relay_once_per_tenant_not_once_per_item(
    tenant_a: Any, monkeypatch: Any, settings: Any
) -> None:
    import core.relay
    from core.models import OutboxEvent
    from core.outbox import outbox_record
    from core.tenancy import tenant_context

    settings.OUTBOX_RELAY_ENABLED = True
    kicks: list[int] = []
    monkeypatch.setattr(core.relay, "_kick", lambda: kicks.append(1))

    def record(item: int) -> int:
        outbox_record(tenant_id="tenant-a", event_type="customer.updated", data={"n": item}, aggregate_id="x")
        return item

    # outside a job, every commit that recorded events kicks (once per transaction)
    for n in range(3):
        with tenant_context(tenant_a):
            record(n)
    assert len(kicks) == 3
    kicks.clear()
    runs = for_each_tenant("test job", lambda tenant: [10, 11, 12, 13], record)
    assert runs["tenant-a"] == ([10, 11, 12, 13], 0)
    assert len(kicks) == 1  # after the tenant's items, each committed in its own transaction
    with tenant_context(tenant_a):
        assert OutboxEvent.objects.count() == 7
