"""The admin: program and tiers, the account page (read-only balances, ledger and tier history), and the manual
adjustment and tier override forms, each guarded by its own permission."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from core.models import User
from loyalty.models import LoyaltyAccount, LoyaltyProgram, LoyaltyTier

pytestmark = pytest.mark.django_db

VIEW = [
    "view_loyaltyaccount",
    "view_loyaltytransaction",
    "view_tierchange",
    "view_loyaltyprogram",
    "change_loyaltyprogram",
    "view_loyaltytier",
    "change_loyaltytier",
]


def staff(tenant, username, codenames):
    user = User.objects.create_user(username, f"{username}@example.com", "pw", tenant=tenant, is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="loyalty", codename__in=codenames)
    )
    return user


@pytest.fixture
def account_a(customer_a, earn, account_of):
    earn(customer_a, "1500.00", reference="POS-1")
    return account_of(customer_a)


def test_the_account_page_shows_balances_ledger_and_tier_history_read_only(client, tenant_a, account_a):
    client.force_login(staff(tenant_a, "clerk", VIEW))
    page = client.get(f"/admin/loyalty/loyaltyaccount/{account_a.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "POS-1" in html and "Tier history" in html and "threshold_reached" in html
    assert 'name="available"' not in html  # no editable balance
    assert client.get("/admin/loyalty/loyaltyaccount/").status_code == 200


def test_adjusting_needs_the_permission(client, tenant_a, account_a):
    client.force_login(staff(tenant_a, "clerk", VIEW))
    url = f"/admin/loyalty/loyaltyaccount/{account_a.pk}/adjust/"
    assert client.get(url).status_code == 403
    assert client.post(url, {"points": 100, "reason": "x", "idempotency_key": "k"}).status_code == 403


def test_a_manager_adjusts_points_once_per_form(client, tenant_a, account_a, in_tenant):
    client.force_login(staff(tenant_a, "manager", [*VIEW, "adjust_points"]))
    url = f"/admin/loyalty/loyaltyaccount/{account_a.pk}/adjust/"
    form = client.get(url)
    assert form.status_code == 200 and "Adjust points" in form.content.decode()
    data = {"points": 250, "reason": "missed purchase", "idempotency_key": "admin-form-1"}
    assert client.post(url, data).status_code == 302
    assert client.post(url, data).status_code == 302  # the same form submitted twice
    missing = client.post(url, {"points": 10, "reason": "", "idempotency_key": "admin-form-2"})
    assert missing.status_code == 200 and "This field is required" in missing.content.decode()
    too_much = client.post(
        url, {"points": -99999, "reason": "x", "idempotency_key": "admin-form-3"}, follow=True
    )
    assert "insufficient_points" in too_much.content.decode()
    with in_tenant(tenant_a):
        account = LoyaltyAccount.objects.get(pk=account_a.pk)
        assert (account.available, account.adjusted) == (1750, 250)
        assert account.transactions.filter(type="adjust").get().actor == "admin:manager"


def test_the_tier_override_form(client, tenant_a, account_a, in_tenant):
    client.force_login(staff(tenant_a, "manager", [*VIEW, "override_tier"]))
    url = f"/admin/loyalty/loyaltyaccount/{account_a.pk}/override/"
    response = client.post(
        url, {"tier": "platinum", "expires_at": "2025-02-01 00:00:00", "reason": "partner"}
    )
    assert response.status_code == 302
    with in_tenant(tenant_a):
        account = LoyaltyAccount.objects.get(pk=account_a.pk)
    assert (account.tier, account.earned_tier) == ("platinum", "silver")


def test_staff_edit_the_program_and_its_tiers(client, tenant_a, program_for, in_tenant):
    program_for(tenant_a)
    with in_tenant(tenant_a):
        program = LoyaltyProgram.objects.get()
        tiers = list(LoyaltyTier.objects.order_by("threshold"))
    client.force_login(staff(tenant_a, "owner", VIEW))
    url = f"/admin/loyalty/loyaltyprogram/{program.pk}/change/"
    assert client.get(url).status_code == 200
    data = {
        "name": "Club",
        "earn_rate": "2",
        "earn_rounding": "floor",
        "pending_days": "7",
        "expiry_months": "24",
        "redemption_points_per_unit": "100",
        "min_redemption_points": "100",
        "max_redemption_share": "0.5",
        "qualifying_window_months": "12",
        "review_period_months": "12",
        "downgrade_policy": "never",
        "negative_balance_policy": "clamp",
        "tiers-TOTAL_FORMS": "4",
        "tiers-INITIAL_FORMS": "4",
        "tiers-MIN_NUM_FORMS": "0",
        "tiers-MAX_NUM_FORMS": "1000",
    }
    for i, tier in enumerate(tiers):
        data |= {
            f"tiers-{i}-id": tier.pk,
            f"tiers-{i}-program": program.pk,
            f"tiers-{i}-name": tier.name,
            f"tiers-{i}-threshold": tier.threshold * 2,
            f"tiers-{i}-earn_multiplier": tier.earn_multiplier,
            f"tiers-{i}-benefits": "",
        }
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    with in_tenant(tenant_a):
        program.refresh_from_db()
        assert (program.name, program.pending_days, program.downgrade_policy) == ("Club", 7, "never")
        assert list(LoyaltyTier.objects.order_by("threshold").values_list("threshold", flat=True)) == [
            0,
            2000,
            10000,
            40000,
        ]
    data["tiers-1-threshold"] = "0"  # silver may not start where bronze does
    response = client.post(url, data)
    assert response.status_code == 200 and "thresholds must rise" in response.content.decode()


def test_a_superuser_sees_every_tenant_and_adjusts_through_the_service(
    client, tenant_a, account_a, in_tenant
):
    admin_user = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin_user)
    assert client.get("/admin/loyalty/loyaltyaccount/").status_code == 200
    url = f"/admin/loyalty/loyaltyaccount/{account_a.pk}/adjust/"
    assert (
        client.post(url, {"points": -500, "reason": "duplicate", "idempotency_key": "root-1"}).status_code
        == 302
    )
    with in_tenant(tenant_a):
        assert LoyaltyAccount.objects.get(pk=account_a.pk).available == 1000
    assert client.get("/admin/loyalty/loyaltyprogram/").status_code == 200
    assert client.get("/admin/loyalty/loyaltytransaction/").status_code == 200
    assert client.get("/admin/loyalty/stampreward/").status_code == 200


ADMIN_PAGES = [
    "/admin/loyalty/",
    "/admin/loyalty/loyaltyaccount/",
    "/admin/loyalty/loyaltyaccount/?q=nobody&tier=gold",
    "/admin/loyalty/loyaltyaccount/{account}/change/",
    "/admin/loyalty/loyaltyaccount/{account}/history/",
    "/admin/loyalty/loyaltyaccount/{account}/adjust/",
    "/admin/loyalty/loyaltyaccount/{account}/override/",
    "/admin/loyalty/loyaltyprogram/",
    "/admin/loyalty/loyaltyprogram/{program}/change/",
    "/admin/loyalty/loyaltytransaction/",
    "/admin/loyalty/loyaltytransaction/{txn}/change/",
    "/admin/loyalty/stamprule/",
    "/admin/loyalty/stamprule/add/",
    "/admin/loyalty/stamprule/{rule}/change/",
    "/admin/loyalty/stampreward/",
    "/admin/loyalty/stampreward/{reward}/change/",
]


@pytest.fixture
def admin_objects(tenant_a, customer_a, account_a, in_tenant):
    from loyalty.models import LoyaltyTransaction, StampReward
    from loyalty.services import stamp_rule_save, stamps_add

    with in_tenant(tenant_a):
        rule = stamp_rule_save(
            tenant_id=tenant_a.slug,
            name="Coffee",
            categories=["coffee"],
            stamps_per_card=2,
            reward_description="x",
        )
        stamps_add(customer=customer_a, rule_id=rule.pk, stamps=2, idempotency_key="s1")
        return {
            "account": account_a.pk,
            "program": LoyaltyProgram.objects.get().pk,
            "txn": LoyaltyTransaction.objects.first().pk,
            "rule": rule.pk,
            "reward": StampReward.objects.get().pk,
        }


@pytest.mark.parametrize("who", ["staff", "superuser"])
def test_every_loyalty_admin_page_renders(client, tenant_a, admin_objects, who):
    if who == "superuser":
        user = User.objects.create_superuser("root", "root@example.com", "pw")
    else:
        user = staff(
            tenant_a,
            "manager",
            [
                *VIEW,
                "adjust_points",
                "override_tier",
                "add_stamprule",
                "change_stamprule",
                "view_stamprule",
                "view_stampreward",
            ],
        )
    client.force_login(user)
    for page in ADMIN_PAGES:
        response = client.get(page.format(**admin_objects))
        assert response.status_code == 200, (page, response.status_code)


@pytest.mark.parametrize("form", ["adjust", "override"])
def test_a_form_for_an_account_id_that_is_not_a_number_is_not_found(client, tenant_a, account_a, form):
    client.raise_request_exception = False
    client.force_login(staff(tenant_a, "manager", [*VIEW, "adjust_points", "override_tier"]))
    assert client.get(f"/admin/loyalty/loyaltyaccount/abc/{form}/").status_code == 404
    assert client.get(f"/admin/loyalty/loyaltyaccount/999999/{form}/").status_code == 404


def test_a_stamp_rule_name_taken_in_the_tenant_is_a_form_error(client, tenant_a, admin_objects, in_tenant):
    from loyalty.models import StampRule

    client.raise_request_exception = False
    client.force_login(staff(tenant_a, "owner", ["add_stamprule", "view_stamprule", "change_stamprule"]))
    data = {
        "name": "Coffee",
        "skus": "LATTE",
        "categories": "",
        "stamps_per_card": 5,
        "reward_description": "x",
    }
    response = client.post("/admin/loyalty/stamprule/add/", data)
    assert response.status_code == 200 and "already exists" in response.content.decode()
    assert client.post("/admin/loyalty/stamprule/add/", {**data, "name": "Tea"}).status_code == 302
    with in_tenant(tenant_a):
        assert sorted(StampRule.objects.values_list("name", flat=True)) == ["Coffee", "Tea"]
