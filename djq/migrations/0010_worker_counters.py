from django.db import migrations, models


class Migration(migrations.Migration):
    """Each worker's per-task counters (djq.worker.tally), written with its heartbeats
    and summed by the metrics endpoint."""

    dependencies = [
        ("djq", "0008_task_revoke_permission"),
    ]

    operations = [
        migrations.AddField(
            model_name="worker",
            name="counters",
            field=models.JSONField(blank=True, default=dict, db_default={},
                                   help_text="Tasks finished per name and state, runtimes"),
        ),
    ]
