# Leases checked by every claim, start and finish (djq/sql/functions/djq_cycle_v2.sql).

from django.db import migrations

from djq import sql


class Migration(migrations.Migration):

    dependencies = [
        ("djq", "0005_worker_registered"),
    ]

    operations = [
        migrations.RunSQL(
            sql=sql.function("djq_cycle_v2"),
            reverse_sql="DROP FUNCTION IF EXISTS djq_cycle_v2(bigint, text, json, uuid[], "
            "text[], int, int, boolean, text[], double precision)",
        ),
    ]
