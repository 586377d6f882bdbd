"""``manage.py djq ...``: every subcommand's output (readable and --json) and exit codes,
with real workers, one of them named as another machine."""

from __future__ import annotations

import datetime
import io
import json
import uuid
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from djq import AsyncResult, states
from djq import __version__ as djq_version
from djq.exceptions import TaskRevokedError
from djq.management.commands import djq as djq_command
from djq.models import Task as TaskRow
from djq.models import Worker as WorkerRow
from djq.status import Status
from tests.cli import run_manage
from tests.conftest import wait_for
from tests.testapp.tasks import add, echo, fail, sleep

pytestmark = pytest.mark.django_db(transaction=True)


def djq(*args: Any, stdin: str | None = None) -> str:
    out = io.StringIO()
    extra = {} if stdin is None else {"stdin": io.StringIO(stdin)}
    call_command("djq", *[str(a) for a in args], stdout=out, **extra)
    return out.getvalue()


def djq_json(*args: Any) -> Any:
    return json.loads(djq(*args, "--json"))


def status_of(result: Any) -> int:
    return TaskRow.objects.get(id=result.id).status


def test_status_and_inspect_across_two_machines(start_worker):
    a = start_worker("-Q", "qa", "-c", "1", "--prefetch-multiplier", "2", "-n", "w1@host-a")
    b = start_worker("-Q", "qb", "-c", "1", "-n", "w2@host-b")

    assert djq("status") == "->  w1@host-a: OK\n->  w2@host-b: OK\n\n2 nodes online.\n"
    nodes = djq_json("status")
    assert set(nodes) == {"w1@host-a", "w2@host-b"}
    assert nodes["w1@host-a"]["ok"] == "pong" and nodes["w1@host-a"]["pid"] == a.pid
    assert nodes["w2@host-b"]["queues"] == ["qb"]

    running_a = sleep.apply_async((30,), queue="qa")
    waiting_a = sleep.apply_async((30,), queue="qa")  # prefetched behind it: reserved
    running_b = sleep.apply_async((30,), queue="qb")
    later = add.apply_async((1, 2), queue="qc", countdown=300)
    revoked = add.apply_async((0, 0), queue="qc")
    revoked.revoke()
    wait_for(lambda: (status_of(running_a), status_of(waiting_a), status_of(running_b))
             == (2, 1, 2), message="two tasks running, one reserved")

    text = djq("inspect", "active")
    assert text.splitlines() == [
        "->  w1@host-a: OK",
        f"    * tests.testapp.tasks.sleep[{running_a.id}] args=[30] kwargs={{}}",
        "->  w2@host-b: OK",
        f"    * tests.testapp.tasks.sleep[{running_b.id}] args=[30] kwargs={{}}",
        "",
        "2 nodes online.",
    ]
    active = djq_json("inspect", "active")
    entry = active["w1@host-a"][0]
    assert entry["id"] == str(running_a.id) and entry["name"] == "tests.testapp.tasks.sleep"
    assert entry["args"] == [30] and entry["kwargs"] == {} and entry["acknowledged"] is True
    assert entry["hostname"] == "w1@host-a" and entry["time_start"] > 0
    assert entry["delivery_info"]["routing_key"] == "qa"
    assert [e["id"] for e in active["w2@host-b"]] == [str(running_b.id)]
    assert djq_json("inspect", "active", "-d", "w2@host-b").keys() == {"w2@host-b"}

    reserved = djq_json("inspect", "reserved")
    assert [e["id"] for e in reserved["w1@host-a"]] == [str(waiting_a.id)]
    assert reserved["w2@host-b"] == []
    assert "->  w2@host-b: OK\n    - empty -" in djq("inspect", "reserved")

    scheduled = djq_json("inspect", "scheduled")
    assert list(scheduled) == ["qc"]
    assert scheduled["qc"][0]["request"]["id"] == str(later.id)
    assert scheduled["qc"][0]["priority"] == 0
    assert datetime.datetime.fromisoformat(scheduled["qc"][0]["eta"]) > timezone.now()
    assert f"add[{later.id}] args=[1, 2]" in djq("inspect", "scheduled")

    revoked_ids = djq_json("inspect", "revoked")
    assert revoked_ids == {"w1@host-a": [str(revoked.id)], "w2@host-b": [str(revoked.id)]}

    stats = djq_json("inspect", "stats")
    assert stats["w1@host-a"]["pid"] == a.pid and stats["w2@host-b"]["pid"] == b.pid
    assert stats["w1@host-a"]["pool"] == {"implementation": "prefork", "max-concurrency": 1}
    assert stats["w1@host-a"]["queues"] == ["qa"] and stats["w1@host-a"]["uptime"] > 0
    assert {"processed", "failed", "loadavg", "sw_ver"} <= set(stats["w1@host-a"])
    assert '"max-concurrency": 1' in djq("inspect", "stats")

    registered = djq_json("inspect", "registered")
    assert "tests.testapp.tasks.add" in registered["w2@host-b"]
    assert registered["w1@host-a"] == sorted(registered["w1@host-a"])
    assert "    * tests.testapp.tasks.add" in djq("inspect", "registered")
    # Each worker answers with what it recorded, not with this process's registry; a
    # worker of an older djq (nothing recorded) is shown this process's names.
    WorkerRow.objects.filter(hostname="w1@host-a").update(registered=["only.on.host_a"])
    WorkerRow.objects.filter(hostname="w2@host-b").update(registered=None)
    registered = djq_json("inspect", "registered")
    assert registered["w1@host-a"] == ["only.on.host_a"]
    assert "tests.testapp.tasks.add" in registered["w2@host-b"]

    found = djq_json("inspect", "query_task", running_a.id, waiting_a.id, later.id)
    assert found["w1@host-a"][str(running_a.id)][0] == "active"
    assert found["w1@host-a"][str(waiting_a.id)][0] == "reserved"
    assert found["queue:qc"][str(later.id)][0] == "scheduled"
    missing = uuid.uuid4()
    with pytest.raises(CommandError, match=f"No task with id {missing}"):
        djq("inspect", "query_task", running_b.id, missing)
    with pytest.raises(CommandError, match="needs one or more task ids"):
        djq("inspect", "query_task")
    with pytest.raises(CommandError, match="takes no task ids"):
        djq("inspect", "active", running_a.id)

    # The same, asked by a process of its own (as from another machine).
    proc = run_manage("djq", "inspect", "active")
    assert proc.returncode == 0, proc.stderr
    assert f"sleep[{running_b.id}]" in proc.stdout and "2 nodes online." in proc.stdout


def test_status_and_inspect_with_no_worker_online():
    with pytest.raises(CommandError, match="No nodes online") as info:
        djq("status")
    assert info.value.returncode == 69  # Celery's EX_UNAVAILABLE
    with pytest.raises(CommandError) as info:
        djq("inspect", "stats")
    assert info.value.returncode == 69
    assert djq("inspect", "scheduled") == "- empty -\n"  # the queues answer without workers
    assert djq_json("inspect", "scheduled") == {}


def test_result_revoke_and_retry(worker):
    ok = add.delay(2, 3)
    assert ok.get(timeout=20) == 5
    bad = fail.delay("boom")
    wait_for(lambda: bad.ready(), message="failure")
    mapping = echo.delay(1, key="v")
    mapping.get(timeout=20)
    pending = add.apply_async((1, 1), countdown=300)

    assert djq("result", ok.id) == "5\n"
    assert djq("result", ok.id, "-t", "tests.testapp.tasks.add") == "5\n"
    assert djq("result", mapping.id) == "{'args': [1], 'kwargs': {'key': 'v'}}\n"
    assert djq("result", bad.id) == "ValueError('boom')\n"
    assert "ValueError: boom" in djq("result", bad.id, "--traceback")
    assert djq("result", ok.id, "--traceback") == f"No traceback: task {ok.id} is SUCCESS\n"
    assert djq("result", pending.id) == f"Task {pending.id} is PENDING: no result yet\n"
    data = djq_json("result", bad.id)
    assert data["state"] == states.FAILURE and data["result"]["exc_type"] == "ValueError"
    assert data["name"] == "tests.testapp.tasks.fail" and "ValueError" in data["traceback"]
    assert djq_json("result", ok.id)["result"] == 5
    with pytest.raises(CommandError, match="is a tests.testapp.tasks.add, not a "
                                           "tests.testapp.tasks.fail"):
        djq("result", ok.id, "-t", "tests.testapp.tasks.fail")
    with pytest.raises(CommandError, match="not registered"):
        djq("result", ok.id, "-t", "no.such.task")
    with pytest.raises(CommandError, match="No task with id"):
        djq("result", uuid.uuid4())
    with pytest.raises(CommandError, match="is not a task id"):
        djq("result", "nope")

    # revoke: a waiting task never runs; a running one is killed with --terminate.
    assert djq("revoke", pending.id) == f"Task {pending.id} revoked: it will not run.\n"
    assert AsyncResult(pending.id).state == states.REVOKED
    running = sleep.delay(30)
    wait_for(lambda: status_of(running) == 2, message="task to start")
    assert "runs to its end" in djq("revoke", running.id)
    assert djq_json("revoke", running.id, "--terminate") == {"id": str(running.id),
                                                             "outcome": "terminating"}
    with pytest.raises(TaskRevokedError):
        running.get(timeout=20)
    assert djq("revoke", ok.id) == f"Task {ok.id} has already finished; nothing to revoke.\n"
    with pytest.raises(CommandError, match="No task with id"):
        djq("revoke", uuid.uuid4())
    with pytest.raises(CommandError, match="Unknown signal"):
        djq("revoke", ok.id, "--terminate", "--signal", "SIGNOPE")

    # retry: a finished task runs again under its id.
    done_before = AsyncResult(ok.id).date_done
    assert djq("retry", ok.id) == f"Task {ok.id} re-queued.\n"
    wait_for(lambda: AsyncResult(ok.id).state == states.SUCCESS
             and AsyncResult(ok.id).date_done != done_before, message="the retried task")
    assert djq_json("retry", bad.id) == {"id": str(bad.id), "requeued": True}
    waiting = add.apply_async((1, 1), countdown=300)
    with pytest.raises(CommandError, match="has not finished"):
        djq("retry", waiting.id)
    with pytest.raises(CommandError, match="No task with id"):
        djq("retry", uuid.uuid4())


def test_purge_asks_and_removes_only_waiting_tasks():
    p1 = [add.apply_async((i, i), queue="p1") for i in range(2)]
    p2 = add.apply_async((1, 1), queue="p2")
    running = add.apply_async((1, 1), queue="p1")
    finished = add.apply_async((2, 2), queue="p1")
    TaskRow.objects.filter(id=running.id).update(status=Status.STARTED, worker="w@x")
    TaskRow.objects.filter(id=finished.id).update(status=Status.DONE, state=states.SUCCESS,
                                                  result="4", date_done=timezone.now())

    assert djq("purge", "-Q", "p2", "-f") == "Purged 1 message from 1 known task queue.\n"
    assert not TaskRow.objects.filter(id=p2.id).exists()
    assert AsyncResult(p2.id).state == states.PENDING

    out = io.StringIO()
    with pytest.raises(CommandError, match="Aborted"):
        call_command("djq", "purge", stdout=out, stdin=io.StringIO("n\n"))
    assert "WARNING: This will remove all tasks from 1 queue: p1." in out.getvalue()
    assert "Are you sure you want to delete all tasks?" in out.getvalue()
    assert TaskRow.objects.filter(queue="p1").count() == 4

    answer = djq("purge", stdin="yes\n")
    assert answer.endswith("Purged 2 messages from 1 known task queue.\n")
    assert set(TaskRow.objects.values_list("id", flat=True)) == {
        uuid.UUID(str(running.id)), uuid.UUID(str(finished.id))}
    assert AsyncResult(finished.id).result == 4  # results are never touched
    assert djq("purge", "-f") == "No messages purged from 0 queues.\n"
    assert djq_json("purge", "-f", "-Q", "p1,p2") == {"purged": 0, "queues": ["p1", "p2"]}
    assert all(AsyncResult(r.id).state == states.PENDING for r in p1)


def test_call_sends_a_task_by_name():
    tid = djq("call", "tests.testapp.tasks.add", "--args", "[2, 3]", "--countdown", "60",
              "--queue", "qx").strip()
    row = TaskRow.objects.get(id=tid)
    assert (row.name, row.args, row.kwargs, row.queue) == ("tests.testapp.tasks.add",
                                                           "[2,3]", "{}", "qx")
    assert row.eta is not None and row.eta > timezone.now() + datetime.timedelta(seconds=50)
    data = djq_json("call", "tests.testapp.tasks.echo", "-a", "[1]", "-k", '{"x": [2]}',
                    "--priority", "5", "--expires", "30")
    row = TaskRow.objects.get(id=data["id"])
    assert data["name"] == "tests.testapp.tasks.echo"
    assert (row.kwargs, row.priority) == ('{"x":[2]}', 5) and row.expires is not None
    eta = (timezone.now() + datetime.timedelta(hours=1)).isoformat()
    row = TaskRow.objects.get(id=djq("call", "tests.testapp.tasks.noop", "--eta", eta).strip())
    assert row.eta is not None and row.run_at > timezone.now()

    for args, message in [
        (["no.such.task"], "Task of kind 'no.such.task' is not registered"),
        (["tests.testapp.tasks.add", "--args", "[1,"], "--args is not valid JSON"),
        (["tests.testapp.tasks.add", "--args", '{"x": 1}'], "--args must be a JSON list"),
        (["tests.testapp.tasks.add", "--kwargs", "[1]"], "--kwargs must be a JSON object"),
        (["tests.testapp.tasks.add", "--args", "[1]"], "missing a required argument"),
        (["tests.testapp.tasks.add", "--args", "[1, 2]", "--eta", "soon"], "ISO 8601"),
    ]:
        with pytest.raises(CommandError, match=message):
            djq("call", *args)
    assert TaskRow.objects.count() == 3  # nothing sent by a refused call


def test_shell(capsys, monkeypatch):
    djq("shell", "--python", "-c", "print(echo.name, states.SUCCESS, djq.__version__)")
    assert capsys.readouterr().out == f"tests.testapp.tasks.echo SUCCESS {djq_version}\n"
    djq("shell", "--without-tasks", "-c", "print('echo' in dir(), 'AsyncResult' in dir())")
    assert capsys.readouterr().out == "False True\n"
    with pytest.raises(CommandError, match="IPython is not installed"):
        djq("shell", "--ipython")
    with pytest.raises(CommandError, match="bpython is not installed"):
        djq("shell", "--bpython")

    tried: list[str] = []

    def missing(name: str) -> Any:
        def run(namespace: dict[str, Any]) -> None:
            tried.append(name)
            raise CommandError(f"{name} is not installed")
        return run

    monkeypatch.setattr(djq_command, "run_ipython", missing("ipython"))
    monkeypatch.setattr(djq_command, "run_bpython", missing("bpython"))
    monkeypatch.setattr(djq_command, "run_python",
                        lambda namespace: tried.append("python " + namespace["echo"].name))
    djq("shell")
    assert tried == ["ipython", "bpython", "python tests.testapp.tasks.echo"]  # Celery's order

    proc = run_manage("djq", "shell", "--python", input="print(add(2, 3) * 7)\n")
    assert proc.returncode == 0, proc.stderr
    assert "35" in proc.stdout


def test_exit_codes_from_the_command_line():
    missing = uuid.uuid4()
    proc = run_manage("djq", "result", str(missing))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"CommandError: No task with id {missing}"]
    proc = run_manage("djq", "status")
    assert proc.returncode == 69
    assert proc.stderr.strip().splitlines() == [
        "CommandError: No nodes online (no worker has a current heartbeat)"]
