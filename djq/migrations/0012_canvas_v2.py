# Canvas flags get a column of their own (djq_task.canvas), and the canvas trigger becomes
# version 2 (djq/sql/functions/djq_canvas_v2.sql), which reads it.
#
# Rolling upgrade: the trigger fires on a row's change whoever writes it, so rows that a
# worker not yet upgraded ends move on through version 2 as well; rows written by code not
# yet upgraded (flags in their options only) are still read by version 2. Nothing but the
# trigger ever called version 1's functions, so those are dropped (the helpers version 2
# shares stay); unapplying this migration creates version 1 again and binds it back.


from django.db import migrations, models

from djq import sql

# Rows in flight keep their flags: read from the options prefix of version 1.
BACKFILL = """
UPDATE djq_task SET canvas = djq_canvas_flags_v2(NULL, options)
WHERE status <> 3 AND canvas IS NULL AND starts_with(options, '{"canvas":{"immutable":')
"""

# Version 1's functions that only its trigger called, and version 2's counterparts.
_REPLACED = ("djq_task_ended_statement()", "djq_task_ended()",
             "djq_canvas_advance(uuid, uuid, boolean, text, text)",
             "djq_chord_count(uuid, uuid[])", "djq_canvas_fail(uuid, text, text)",
             "djq_canvas_start(uuid, text)")

DROP_V1 = "".join(f"DROP FUNCTION IF EXISTS {f};\n" for f in _REPLACED)

DROP_V2 = "".join(
    [f"DROP TRIGGER IF EXISTS {t}_v2 ON djq_task;\n" for t in (
        "djq_task_dropped_statement", "djq_task_ended_statement", "djq_task_dropped",
        "djq_task_ended")]
    + [f"DROP FUNCTION IF EXISTS {f.replace('(', '_v2(', 1)};\n" for f in _REPLACED]
    + ["DROP FUNCTION IF EXISTS djq_canvas_flags_v2(jsonb, text);\n"])


def _v1() -> str:
    """Version 1's text, as migration 0004 created it."""
    return sql.function("djq_canvas_v1")


class Migration(migrations.Migration):

    dependencies = [
        ("djq", "0011_finish_function"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="canvas",
            field=models.JSONField(
                blank=True, null=True,
                help_text="A canvas row's flags, read by the canvas trigger: immutable, "
                          "countdown, on_error"),
        ),
        migrations.RunSQL(sql=sql.function("djq_canvas_v2") + DROP_V1,
                          reverse_sql=DROP_V2 + _v1()),
        migrations.RunSQL(sql=BACKFILL, reverse_sql=migrations.RunSQL.noop),
    ]
