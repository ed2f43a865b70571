"""Tenant staff cannot escalate through the admin's own screens: users, tenants and groups, reached by URL.

The attacker is a staff user of tenant B who was granted every permission on users, tenants and groups (what a
careless grant would give); each test replays one request the attack run made and checks it changed nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission

from core.models import Tenant, User

pytestmark = pytest.mark.django_db

CREDIT_MANAGERS = "credit managers"  # the back-office role of customers/migrations/0003


@pytest.fixture(autouse=True)
def back_office_roles(db: Any) -> None:
    """The groups the data migrations create (get_or_create: idempotent). A transactional test elsewhere empties
    every table, groups too, and the suite reuses its database between runs (`--reuse-db`)."""
    import importlib

    from django.apps import apps

    importlib.import_module("customers.migrations.0003_back_office_roles").create_roles(apps, None)
    importlib.import_module("credit.migrations.0003_credit_managers_group").create_group(apps, None)


@pytest.fixture
def attacker(tenant_b: Any) -> User:
    user = User.objects.create_user("staff-b", password="pw", tenant=tenant_b, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label__in=["core", "auth"], content_type__model__in=["user", "tenant", "group"]
        )
    )
    return User.objects.get(pk=user.pk)  # fresh, without the permission cache


@pytest.fixture
def staff_of_a(tenant_a: Any) -> User:
    return User.objects.create_user(
        "staff-a", email="staff-a@example.com", password="pw", tenant=tenant_a, is_staff=True
    )


@pytest.fixture
def colleague(tenant_b: Any) -> User:
    return User.objects.create_user(
        "cashier-b", email="cashier-b@example.com", password="pw", tenant=tenant_b
    )


def user_form(user: User, **changes: Any) -> dict[str, Any]:
    """The change form of `user` as the browser posts it, with `changes` applied."""
    data: dict[str, Any] = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "groups": [g.pk for g in user.groups.all()],
        "user_permissions": [p.pk for p in user.user_permissions.all()],
        "tenant": user.tenant_id or "",
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def test_staff_list_of_users_shows_only_their_tenant(client, attacker, staff_of_a, colleague):
    client.force_login(attacker)
    page = client.get("/admin/core/user/")
    assert page.status_code == 200
    assert b"cashier-b" in page.content
    assert b"staff-a" not in page.content


def test_staff_cannot_open_or_change_a_user_of_another_tenant(client, attacker, staff_of_a):
    client.force_login(attacker)
    assert client.get(f"/admin/core/user/{staff_of_a.pk}/change/").status_code in (302, 404)
    response = client.post(
        f"/admin/core/user/{staff_of_a.pk}/change/", user_form(staff_of_a, email="owned@example.com")
    )
    assert response.status_code in (302, 404)
    staff_of_a.refresh_from_db()
    assert staff_of_a.email == "staff-a@example.com"
    assert client.get(f"/admin/core/user/{staff_of_a.pk}/password/").status_code in (302, 404)
    assert client.post(f"/admin/core/user/{staff_of_a.pk}/delete/", {"post": "yes"}).status_code in (302, 404)
    assert User.objects.filter(pk=staff_of_a.pk).exists()


def test_staff_cannot_make_themselves_superuser(client, attacker):
    client.force_login(attacker)
    page = client.get(f"/admin/core/user/{attacker.pk}/change/")
    assert page.status_code == 200
    assert b'name="is_superuser"' not in page.content
    assert b'name="user_permissions"' not in page.content
    client.post(f"/admin/core/user/{attacker.pk}/change/", user_form(attacker, is_superuser="on"))
    attacker.refresh_from_db()
    assert attacker.is_superuser is False


def test_staff_cannot_move_a_user_to_another_tenant(client, attacker, colleague, tenant_a):
    client.force_login(attacker)
    assert b'name="tenant"' not in client.get(f"/admin/core/user/{colleague.pk}/change/").content
    client.post(f"/admin/core/user/{colleague.pk}/change/", user_form(colleague, tenant=tenant_a.pk))
    colleague.refresh_from_db()
    assert colleague.tenant_id == attacker.tenant_id


def test_staff_cannot_grant_a_permission_or_group_they_do_not_hold(client, attacker, colleague):
    managers = Group.objects.get(name=CREDIT_MANAGERS)
    approve = Permission.objects.get(codename="delete_customer")
    client.force_login(attacker)
    page = client.get(f"/admin/core/user/{colleague.pk}/change/")
    assert CREDIT_MANAGERS.encode() not in page.content
    response = client.post(
        f"/admin/core/user/{colleague.pk}/change/",
        user_form(colleague, groups=[managers.pk], user_permissions=[approve.pk]),
    )
    assert response.status_code == 200  # the form refuses the group: not one of the choices
    colleague.refresh_from_db()
    assert not colleague.groups.exists()
    assert not colleague.user_permissions.exists()


def test_staff_can_grant_a_group_they_hold_and_keep_the_ones_they_cannot_see(client, attacker, colleague):
    store_staff = Group.objects.get(name="store staff")
    managers = Group.objects.get(name=CREDIT_MANAGERS)
    attacker.groups.add(store_staff)
    colleague.groups.add(managers)  # given by a superuser: the attacker cannot see or remove it
    client.force_login(attacker)
    response = client.post(
        f"/admin/core/user/{colleague.pk}/change/", user_form(colleague, groups=[store_staff.pk])
    )
    assert response.status_code == 302
    assert set(colleague.groups.all()) == {store_staff, managers}


def test_staff_created_users_belong_to_their_tenant_and_are_not_superusers(client, attacker, tenant_a):
    client.force_login(attacker)
    response = client.post(
        "/admin/core/user/add/",
        {
            "username": "new-b",
            "password1": "a-long-password-42",
            "password2": "a-long-password-42",
            "tenant": tenant_a.pk,
            "is_superuser": "on",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    created = User.objects.get(username="new-b")
    assert created.tenant_id == attacker.tenant_id
    assert created.is_superuser is False


def test_superusers_are_invisible_to_tenant_staff(client, attacker):
    root = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(attacker)
    assert b"root@example.com" not in client.get("/admin/core/user/").content
    assert client.get(f"/admin/core/user/{root.pk}/change/").status_code in (302, 404)


def test_the_tenant_model_is_superuser_only(client, attacker, tenant_a):
    client.force_login(attacker)
    assert client.get("/admin/core/tenant/").status_code == 403
    assert client.get(f"/admin/core/tenant/{tenant_a.pk}/change/").status_code == 403
    client.post(
        f"/admin/core/tenant/{tenant_a.pk}/change/",
        {
            "slug": tenant_a.slug,
            "name": tenant_a.name,
            "country": "CL",
            "currency": "USD",
            "phone_region": "CL",
        },
    )
    assert Tenant.objects.get(pk=tenant_a.pk).currency == "CLP"
    assert client.get("/admin/core/tenant/add/").status_code == 403


def test_groups_are_read_only_to_tenant_staff(client, attacker):
    managers = Group.objects.get(name=CREDIT_MANAGERS)
    before = set(managers.permissions.values_list("pk", flat=True))
    everything = list(Permission.objects.values_list("pk", flat=True))
    client.force_login(attacker)
    client.post(
        f"/admin/auth/group/{managers.pk}/change/", {"name": CREDIT_MANAGERS, "permissions": everything}
    )
    assert set(managers.permissions.values_list("pk", flat=True)) == before
    assert (
        client.post("/admin/auth/group/add/", {"name": "mine", "permissions": everything}).status_code == 403
    )
    assert not Group.objects.filter(name="mine").exists()
    assert client.post(f"/admin/auth/group/{managers.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Group.objects.filter(pk=managers.pk).exists()


def test_superuser_still_manages_users_tenants_and_groups(client, staff_of_a, tenant_b):
    root = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    page = client.get(f"/admin/core/user/{staff_of_a.pk}/change/")
    assert b'name="is_superuser"' in page.content and b'name="tenant"' in page.content
    assert client.get("/admin/core/tenant/").status_code == 200
    assert client.get("/admin/auth/group/add/").status_code == 200
    client.post(f"/admin/core/user/{staff_of_a.pk}/change/", user_form(staff_of_a, tenant=tenant_b.pk))
    staff_of_a.refresh_from_db()
    assert staff_of_a.tenant_id == tenant_b.pk
