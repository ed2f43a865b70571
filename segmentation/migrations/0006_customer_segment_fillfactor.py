"""Leave a tenth of each page of the current segments free, so that the nightly job's updates stay on their page:
a change of scores, VIP flag or churn risk alone (no indexed column) becomes a HOT update with no index entries, and
a change of segment writes its new version beside the old one instead of on another page (fewer pages dirtied and
written to the WAL in full after a checkpoint). Pages written before this migration keep their fill until the
table is rewritten."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("segmentation", "0005_segment_change_run_unchecked")]

    operations = [
        migrations.RunSQL(
            sql="ALTER TABLE segmentation_customersegment SET (fillfactor = 90)",
            reverse_sql="ALTER TABLE segmentation_customersegment RESET (fillfactor)",
        ),
    ]
