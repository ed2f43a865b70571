"""The demo seed gives the demo customers some points and can run again without changing anything."""

from __future__ import annotations

import pytest

from loyalty.demo import seed
from loyalty.models import LoyaltyAccount, LoyaltyTransaction, StampCard
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_seed_is_idempotent(tenant_a, in_tenant):
    ana = CustomerFactory(tenant=tenant_a, email="ana.perez@example.com")
    CustomerFactory(tenant=tenant_a, email="carla@example.com")
    with in_tenant(tenant_a):
        seed(tenant_a)
        counts = (LoyaltyTransaction.objects.count(), StampCard.objects.count())
        seed(tenant_a)
        assert (LoyaltyTransaction.objects.count(), StampCard.objects.count()) == counts
        account = LoyaltyAccount.objects.get(customer=ana)
    # 2,500 + 3,100 x 1.25 (silver after the first purchase) - 500 redeemed.
    assert (account.available, account.tier) == (5875, "gold")
