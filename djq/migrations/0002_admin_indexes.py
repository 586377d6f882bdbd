# Indexes for listing tasks newest first (admin, API, monitor) and by API owner.

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):

    # CREATE INDEX CONCURRENTLY: a large djq_task keeps taking enqueues while it builds.
    atomic = False

    dependencies = [
        ("djq", "0001_initial"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="task",
            index=models.Index(fields=["date_created", "id"], name="djq_task_created"),
        ),
        AddIndexConcurrently(
            model_name="task",
            index=models.Index(
                condition=models.Q(("owner__isnull", False)),
                fields=["owner", "date_created"],
                name="djq_task_owner",
            ),
        ),
    ]
