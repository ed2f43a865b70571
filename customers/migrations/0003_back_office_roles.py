"""The back office's roles, as groups a superuser adds staff to.

- "credit managers" (created by credit 0003, which grants everything credit): also read customers, loyalty and
  segments, so that the customer behind a credit line is one click away; they change nothing there.
- "store staff": manage customers (create, edit) and loyalty (read everything, adjust points, override tiers), read
  segments and credit, and ask for a credit line; never approve or reject one (no `credit.approve_creditline`).

Permissions are normally created after migrations (post_migrate); the ones granted here are created here, so the
groups are complete right after `migrate`.
"""

from django.db import migrations

CREDIT_MANAGERS = "credit managers"
STORE_STAFF = "store staff"

READ_APPS = ("customers", "loyalty", "segmentation")
# Rows only services write: nobody gets add/change on them here.
SERVICE_ONLY = {"customerchange", "customermetrics", "purchase", "purchaseitem"}

STORE_STAFF_EXTRA = {
    "loyalty": {"loyaltyaccount": ["adjust_points", "override_tier"]},
    "credit": {
        "creditline": ["view_creditline", "add_creditline"],
        "creditlinechange": ["view_creditlinechange"],
        "creditcharge": ["view_creditcharge"],
        "credithold": ["view_credithold"],
        "creditpayment": ["view_creditpayment"],
        "volumediscountbracket": ["view_volumediscountbracket"],
    },
}

NAMES = {
    "adjust_points": "Can adjust loyalty points by hand",
    "override_tier": "Can override a customer's loyalty tier",
}


def _permission(apps, app_label, model, codename):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
    action = codename.partition("_")[0]
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type,
        codename=codename,
        defaults={"name": NAMES.get(codename, f"Can {action} {model}")},
    )
    return permission


def _models(apps, app_label):
    return [m._meta.model_name for m in apps.get_app_config(app_label).get_models()]


def create_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    managers, _ = Group.objects.get_or_create(name=CREDIT_MANAGERS)
    staff, _ = Group.objects.get_or_create(name=STORE_STAFF)
    for app_label in READ_APPS:
        for model in _models(apps, app_label):
            view = _permission(apps, app_label, model, f"view_{model}")
            managers.permissions.add(view)
            staff.permissions.add(view)
    for model in _models(apps, "customers"):
        if model not in SERVICE_ONLY:
            for action in ("add", "change"):
                staff.permissions.add(_permission(apps, "customers", model, f"{action}_{model}"))
    for app_label, grants in STORE_STAFF_EXTRA.items():
        for model, codenames in grants.items():
            for codename in codenames:
                staff.permissions.add(_permission(apps, app_label, model, codename))


def delete_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.filter(name=STORE_STAFF).delete()
    managers = Group.objects.filter(name=CREDIT_MANAGERS).first()
    if managers is not None:
        managers.permissions.remove(
            *managers.permissions.filter(content_type__app_label__in=READ_APPS, codename__startswith="view_")
        )


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0002_rls"),
        ("loyalty", "0003_account_next_due"),
        ("segmentation", "0003_lean_indexes"),
        ("credit", "0003_credit_managers_group"),
    ]

    operations = [migrations.RunPython(create_roles, delete_roles)]
