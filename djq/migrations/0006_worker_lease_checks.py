# Leases checked by every claim, start and finish (djq.broker.CYCLE_FUNCTION_V2).

from django.db import migrations

from djq.broker import CYCLE_FUNCTION_V2


class Migration(migrations.Migration):

    dependencies = [
        ("djq", "0005_worker_registered"),
    ]

    operations = [
        migrations.RunSQL(
            sql=CYCLE_FUNCTION_V2,
            reverse_sql="DROP FUNCTION IF EXISTS djq_cycle_v2(bigint, text, json, uuid[], "
            "text[], int, int, boolean, text[], double precision)",
        ),
    ]
