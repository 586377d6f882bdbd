# Redeliveries counted on the row (djq.broker.redeliver): a task lost more than
# task_max_deliveries times ends FAILURE instead of looping.
# The column has a database default, so rows written by raw INSERTs (and by workers of
# the previous release during a rolling upgrade) start at 0; adding it rewrites nothing.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("djq", "0008_task_revoke_permission"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="deliveries",
            field=models.IntegerField(
                db_default=0, default=0,
                help_text="Times it was started and lost (its process or worker died), "
                          "then delivered again"),
        ),
    ]
