# Canvas: deferred rows, chord counters, saved groups, and the trigger that moves
# chains and chords on whenever a task ends, whatever ended it (a worker, a revoke, the
# recovery of a dead worker's rows, an expiry). Written by hand. The trigger and its
# functions are djq/sql/functions/djq_canvas_v1.sql.

import django.contrib.postgres.fields
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models

from djq import sql

# What djq_canvas_v1.sql does:
# A row that ends (status becomes 3, or an ignored result is deleted while running)
# moves on:
#  (a) the deferred rows waiting on it: WAITING with its result prepended to their args
#      (unless the step is immutable) if it succeeded; otherwise FAILURE with its error,
#      and so on down the chain;
#  (b) its chord, if its group has one: one less to wait for (counted when the
#      statement ends, for all its rows, chord by chord in a fixed order); at 0 the rows
#      waiting on the chord start with the members' results in member order, or fail
#      with ChordError naming the first member (in order) that did not succeed.
# It wakes workers (djq_enqueue, the queue name) and readers (djq_done, ids).
#
# Deferred rows are written by djq.canvas, whose options text starts with
# {"canvas":{"immutable":true|false[,"countdown":N]...: read as text, never parsed as
# JSON, so nothing a task stored can make this trigger fail a worker's statement.

DROP_CANVAS_SQL = """
DROP TRIGGER IF EXISTS djq_task_dropped_statement ON djq_task;
DROP TRIGGER IF EXISTS djq_task_ended_statement ON djq_task;
DROP TRIGGER IF EXISTS djq_task_dropped ON djq_task;
DROP TRIGGER IF EXISTS djq_task_ended ON djq_task;
DROP FUNCTION IF EXISTS djq_task_ended_statement();
DROP FUNCTION IF EXISTS djq_task_ended();
DROP FUNCTION IF EXISTS djq_canvas_advance(uuid, uuid, boolean, text, text);
DROP FUNCTION IF EXISTS djq_chord_count(uuid, uuid[]);
DROP FUNCTION IF EXISTS djq_canvas_fail(uuid, text, text);
DROP FUNCTION IF EXISTS djq_canvas_start(uuid, text);
DROP FUNCTION IF EXISTS djq_notify_done(uuid[]);
DROP FUNCTION IF EXISTS djq_prepend_arg(text, text);
DROP FUNCTION IF EXISTS djq_exc_repr(text);
DROP FUNCTION IF EXISTS djq_pyrepr(json);
"""


class Migration(migrations.Migration):

    # CREATE INDEX CONCURRENTLY: a large djq_task keeps taking enqueues while it builds.
    atomic = False

    # After 0004, not 0001: 0003 and 0004 were applied to existing databases before this
    # file existed, and a migration may not come before one already applied.
    dependencies = [
        ("djq", "0003_cycle_function"),
    ]

    operations = [
        migrations.CreateModel(
            name="Chord",
            fields=[
                ("group_id", models.UUIDField(primary_key=True, serialize=False)),
                ("remaining", models.IntegerField()),
                ("callback_id", models.UUIDField(blank=True, null=True)),
                ("members", django.contrib.postgres.fields.ArrayField(
                    base_field=models.UUIDField(), size=None)),
                ("created", models.DateTimeField()),
            ],
            options={"db_table": "djq_chord"},
        ),
        migrations.CreateModel(
            name="SavedGroup",
            fields=[
                ("id", models.UUIDField(primary_key=True, serialize=False)),
                ("members", django.contrib.postgres.fields.ArrayField(
                    base_field=models.UUIDField(), size=None)),
                ("date_created", models.DateTimeField()),
            ],
            options={"db_table": "djq_group"},
        ),
        migrations.AddField(
            model_name="task",
            name="waiting_on",
            field=models.UUIDField(
                blank=True, null=True,
                help_text="A deferred canvas row starts when this task (or chord) ends"),
        ),
        migrations.AlterField(
            model_name="task",
            name="status",
            field=models.SmallIntegerField(
                choices=[(0, "waiting"), (1, "claimed"), (2, "started"), (3, "done"),
                         (4, "deferred")],
                default=0),
        ),
        AddIndexConcurrently(
            model_name="task",
            index=models.Index(condition=models.Q(("status", 4)), fields=["waiting_on"],
                               name="djq_task_deferred"),
        ),
        migrations.RunSQL(sql=sql.function("djq_canvas_v1"), reverse_sql=DROP_CANVAS_SQL),
    ]
