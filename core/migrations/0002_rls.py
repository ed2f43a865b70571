from django.db import migrations

from core.tenancy import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]

    operations = [EnableRowLevelSecurity("OutboxEvent")]
