# The worker's round trip as a server-side function, version 1 (djq/sql/functions/
# djq_cycle_v1.sql, frozen as it was released): workers of that release call it during a
# rolling upgrade.

from django.db import migrations

from djq import sql


class Migration(migrations.Migration):

    dependencies = [
        ("djq", "0002_admin_indexes"),
    ]

    operations = [
        migrations.RunSQL(
            sql=sql.function("djq_cycle_v1"),
            reverse_sql="DROP FUNCTION IF EXISTS djq_cycle_v1(bigint, text, json, uuid[], "
            "text[], int, int, boolean, text[])",
        ),
    ]
