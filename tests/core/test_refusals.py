"""A raised error out of `tenant_context` means nothing of its transaction was committed; a refusal that must leave a
record is written by the refusal recorder after the rollback, in a transaction of its own."""

from __future__ import annotations

import pytest

from core.errors import Conflict
from core.models import OutboxEvent
from core.outbox import outbox_record
from core.refusals import refusal_record
from core.tenancy import tenant_context

pytestmark = pytest.mark.django_db(transaction=True)


def _events(tenant, event_type):
    with tenant_context(tenant):
        return list(OutboxEvent.objects.filter(event_type=event_type).values_list("payload", flat=True))


def _record(tenant, event_type):
    def write():
        outbox_record(
            tenant_id=tenant.slug, event_type=event_type, data={"customer_id": "c"}, aggregate_id="c"
        )

    refusal_record(tenant_id=tenant.slug, write=write)


def test_a_domain_error_rolls_back_everything_the_block_wrote(tenant_a):
    with pytest.raises(Conflict), tenant_context(tenant_a):
        outbox_record(tenant_id=tenant_a.slug, event_type="test.written", data={"customer_id": "c"})
        raise Conflict("refused")
    assert _events(tenant_a, "test.written") == []


def test_a_recorded_refusal_is_written_after_the_rollback_and_only_it(tenant_a):
    with pytest.raises(Conflict), tenant_context(tenant_a):
        outbox_record(tenant_id=tenant_a.slug, event_type="test.written", data={"customer_id": "c"})
        with tenant_context(tenant_a):  # a nested context leaves the writing to the outermost one
            _record(tenant_a, "test.refused")
            raise Conflict("refused")
    assert _events(tenant_a, "test.written") == []
    assert len(_events(tenant_a, "test.refused")) == 1


def test_a_refusal_the_block_caught_commits_with_it_and_another_error_drops_it(tenant_a):
    with tenant_context(tenant_a):
        try:
            _record(tenant_a, "test.caught")
            raise Conflict("refused")
        except Conflict:
            pass
    assert len(_events(tenant_a, "test.caught")) == 1

    with pytest.raises(RuntimeError), tenant_context(tenant_a):
        _record(tenant_a, "test.bug")
        raise RuntimeError("a bug, not a refusal")
    assert _events(tenant_a, "test.bug") == []
