# The finish as a server-side function of its own (djq/sql/functions/djq_finish_v1.sql),
# called by broker.finish and by the worker's cycle, version 3 (djq_cycle_v3.sql), so
# that the statement is written once. djq_cycle_v1 and v2 stay: workers of older
# releases call them during a rolling upgrade.

from django.db import migrations

from djq import sql


class Migration(migrations.Migration):

    dependencies = [
        ("djq", "0010_worker_counters"),
    ]

    operations = [
        migrations.RunSQL(
            sql=sql.function("djq_finish_v1"),
            reverse_sql="DROP FUNCTION IF EXISTS djq_finish_v1(bigint, json)",
        ),
        migrations.RunSQL(
            sql=sql.function("djq_cycle_v3"),
            reverse_sql="DROP FUNCTION IF EXISTS djq_cycle_v3(bigint, text, json, uuid[], "
            "text[], int, int, boolean, text[], double precision)",
        ),
    ]
