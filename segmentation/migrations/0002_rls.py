from django.db import migrations

from core.tenancy import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("segmentation", "0001_initial")]

    operations = [
        EnableRowLevelSecurity(model)
        for model in ("SegmentationSettings", "SegmentRule", "SegmentRun", "CustomerSegment", "SegmentChange")
    ]
