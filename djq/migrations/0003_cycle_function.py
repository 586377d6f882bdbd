# The worker's round trip as a server-side function (see djq.broker.CYCLE_FUNCTION_V1).

from django.db import migrations

from djq.broker import CYCLE_FUNCTION_V1


class Migration(migrations.Migration):

    dependencies = [
        ("djq", "0002_admin_indexes"),
    ]

    operations = [
        migrations.RunSQL(
            sql=CYCLE_FUNCTION_V1,
            reverse_sql="DROP FUNCTION IF EXISTS djq_cycle_v1(bigint, text, json, uuid[], "
            "text[], int, int, boolean, text[])",
        ),
    ]
