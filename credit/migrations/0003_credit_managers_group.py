"""The "credit managers" group: approve credit lines and work the credit screens of the admin.

Permissions are normally created after migrations (post_migrate); this migration creates the ones it grants, so
the group is complete right after `migrate`.
"""

from django.db import migrations

GROUP = "credit managers"

# model -> permission codenames granted to the group
GRANTS = {
    "creditline": ["approve_creditline", "view_creditline", "add_creditline", "change_creditline"],
    "creditrequest": ["view_creditrequest"],
    "creditlinechange": ["view_creditlinechange"],
    "credithold": ["view_credithold"],
    "creditcharge": ["view_creditcharge"],
    "creditpayment": ["view_creditpayment"],
    "creditledgerentry": ["view_creditledgerentry"],
    "volumediscountbracket": [
        "view_volumediscountbracket",
        "add_volumediscountbracket",
        "change_volumediscountbracket",
        "delete_volumediscountbracket",
    ],
}

NAMES = {"approve_creditline": "Can approve or reject credit line requests"}


def create_group(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    group, _ = Group.objects.get_or_create(name=GROUP)
    for model, codenames in GRANTS.items():
        content_type, _ = ContentType.objects.get_or_create(app_label="credit", model=model)
        for codename in codenames:
            action, _, _ = codename.partition("_")
            permission, _ = Permission.objects.get_or_create(
                content_type=content_type,
                codename=codename,
                defaults={"name": NAMES.get(codename, f"Can {action} {model}")},
            )
            group.permissions.add(permission)


def delete_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("credit", "0002_rls"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, delete_group)]
