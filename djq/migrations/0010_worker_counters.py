from django.db import migrations, models


class Migration(migrations.Migration):
    """Each worker's per-task counters (djq.worker.tally), written with its heartbeats and
    summed by the metrics endpoint, and the one row that keeps the counters of pruned
    worker rows."""

    dependencies = [
        ("djq", "0009_task_deliveries"),
    ]

    operations = [
        migrations.AddField(
            model_name="worker",
            name="counters",
            field=models.JSONField(blank=True, default=dict, db_default={},
                                   help_text="Tasks finished per name and state, runtimes"),
        ),
        migrations.CreateModel(
            name="RetiredCounters",
            fields=[
                ("id", models.SmallIntegerField(default=1, primary_key=True, serialize=False)),
                ("counters", models.JSONField(blank=True, default=dict)),
            ],
            options={"db_table": "djq_retired_counters"},
        ),
        migrations.RunSQL(
            "INSERT INTO djq_retired_counters (id, counters) VALUES (1, '{}')",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
