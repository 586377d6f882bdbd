"""The admin: task change list (columns, filters, search, estimated count), detail page,
actions and buttons through djq.control, and the workers page."""

from __future__ import annotations

import datetime
import re
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from djq import broker, states
from djq.admin import EstimatedCountPaginator
from djq.models import Task
from tests.rows import make_task, make_worker

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:djq_task_changelist"


def changelist(client: Client, **params: Any) -> str:
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200, response.content[:2000]
    return response.content.decode()


def listed_ids(html: str) -> set[str]:
    return set(re.findall(r"/admin/djq/task/([0-9a-f-]{36})/change/", html))


def test_changelist_columns_and_colours(admin_client: Client) -> None:
    ok = make_task(states.SUCCESS)
    failed = make_task(states.FAILURE, name="tests.testapp.tasks.fail", queue="special")
    waiting = make_task(states.PENDING)
    html = changelist(admin_client)
    assert listed_ids(html) == {str(ok.id), str(failed.id), str(waiting.id)}
    for header in ("Id", "Name", "State", "Queue", "Worker", "Created", "Runtime"):
        assert f">{header}<" in html
    head = html.split('id="result_list"')[1].split("<tbody>")[0]
    assert head.count('class="sortable') == 1  # only "created" sorts (indexed)
    assert "background:#198754" in html and ">SUCCESS<" in html
    assert "background:#dc3545" in html and ">FAILURE<" in html
    # A short id links to the task, the full one is on hover and behind a copy button.
    assert (f'<a href="/admin/djq/task/{ok.id}/change/" title="{ok.id}">{str(ok.id)[:8]}</a>'
            in html)
    assert f'data-copy="{ok.id}"' in html
    # Runtime of the finished rows (10 ms to 250 ms), started and finished on hover.
    started = timezone.localtime(ok.date_started).strftime("%Y-%m-%d %H:%M:%S %Z")
    assert f'title="started {started}\nfinished ' in html and ">240 ms</span>" in html
    # Created as a <time> the script shows relative, with the absolute time and zone.
    created = timezone.localtime(ok.date_created).strftime("%Y-%m-%d %H:%M:%S %Z")
    assert f'<time class="djq-time" datetime="{ok.date_created.isoformat()}"' in html
    assert f'title="{created}"' in html and created.endswith(" UTC")
    assert "/static/djq/time.js" in html and "/static/djq/admin.css" in html
    # Newest first.
    assert html.index(str(waiting.id)) < html.index(str(ok.id))


def test_changelist_never_counts_the_whole_table(admin_client: Client) -> None:
    for _ in range(3):
        make_task()
    with CaptureQueriesContext(connection) as queries:
        html = changelist(admin_client)
    assert "3 tasks" in html
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()
              and "djq_task" in q["sql"]]
    assert counts, "the paginator counted nothing"
    assert all("LIMIT" in sql.upper() for sql in counts), counts


def test_paginator_estimates_past_its_cap() -> None:
    for _ in range(7):
        make_task()
    make_task(states.FAILURE)

    class Small(EstimatedCountPaginator):
        cap = 5

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE djq_task")
    unfiltered = Small(Task.objects.order_by("-date_created"), 2)
    assert unfiltered.count == 8  # reltuples after ANALYZE, no COUNT(*) of the table
    filtered = Small(Task.objects.filter(state=states.SUCCESS).order_by("-date_created"), 2)
    assert filtered.count >= 6  # counted up to the cap, then estimated
    small = Small(Task.objects.filter(state=states.FAILURE).order_by("-date_created"), 2)
    assert small.count == 1  # under the cap: exact


def test_filters(admin_client: Client) -> None:
    old = make_task(states.SUCCESS, created=timezone.now() - datetime.timedelta(days=40))
    failed = make_task(states.FAILURE, name="tests.testapp.tasks.fail")
    special = make_task(states.SUCCESS, queue="special", worker="w2@test")
    make_worker("w2@test")
    assert listed_ids(changelist(admin_client, state="FAILURE")) == {str(failed.id)}
    assert listed_ids(changelist(admin_client, name="tests.testapp.tasks.fail")) == {
        str(failed.id)}
    assert listed_ids(changelist(admin_client, queue="special")) == {str(special.id)}
    assert listed_ids(changelist(admin_client, worker="w2@test")) == {str(special.id)}
    # As the "Past 7 days" link of the date filter gives them.
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    recent = changelist(admin_client, date_created__gte=str(today - datetime.timedelta(days=7)),
                        date_created__lt=str(today + datetime.timedelta(days=1)))
    assert str(old.id) not in listed_ids(recent) and str(failed.id) in listed_ids(recent)
    # The filter choices come from the registry and the workers table.
    html = changelist(admin_client)
    assert "?name=tests.testapp.tasks.sleep" in html
    assert "?worker=w2%40test" in html
    assert "?queue=special" in html


def test_search_by_id_name_and_arguments(admin_client: Client) -> None:
    a = make_task(args=["needle-in-args", 1])
    b = make_task(name="tests.testapp.tasks.echo", args=[7])
    c = make_task(args=[1, 2])
    assert listed_ids(changelist(admin_client, q=str(c.id))) == {str(c.id)}
    assert listed_ids(changelist(admin_client, q="needle-in")) == {str(a.id)}
    assert listed_ids(changelist(admin_client, q="tasks.echo")) == {str(b.id)}
    assert listed_ids(changelist(admin_client, q=str(uuid.uuid4()))) == set()


def test_detail_page(admin_client: Client) -> None:
    running = make_task("PROGRESS", name="tests.testapp.tasks.progress", args=[10, 0.1],
                        result={"progress": 40})
    failed = make_task(states.FAILURE, kwargs={"when": "now"})
    done = make_task(states.SUCCESS, result={"total": 3, "items": ["a", "b"]})
    url = reverse("admin:djq_task_change", args=[running.id])
    html = admin_client.get(url).content.decode()
    assert '<progress class="djq-progress" max="100" value="40.0"' in html
    assert "PROGRESS" in html and "tests.testapp.tasks.progress" in html
    assert 'name="_save"' not in html  # read-only: no save buttons
    assert "djq-retry" in html and "djq-terminate" in html
    html = admin_client.get(reverse("admin:djq_task_change", args=[failed.id])).content.decode()
    assert "ValueError: boom" in html
    assert "&quot;when&quot;: &quot;now&quot;" in html
    html = admin_client.get(reverse("admin:djq_task_change", args=[done.id])).content.decode()
    assert "&quot;items&quot;: [\n    &quot;a&quot;," in html  # pretty-printed
    assert admin_client.post(url, {}).status_code == 403


def test_detail_page_reads_as_a_task(admin_client: Client, django_user_model: Any) -> None:
    """Title "Task", times to the second with their zone, the owner by username, and a
    long name or argument that wraps (tests/test_admin_browser.py measures the page)."""
    alice = django_user_model.objects.create_user("alice", password="pw")
    task = make_task(states.STARTED, name="x" * 200, args=["y" * 400], owner=str(alice.pk))
    html = admin_client.get(reverse("admin:djq_task_change", args=[task.id])).content.decode()
    assert "<h1>Task</h1>" in html and "Change task" not in html
    started = timezone.localtime(task.date_started).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert f'data-style="both">{started}</time>' in html
    assert f"alice (#{alice.pk})" in html
    assert '<pre class="djq-pre">[\n  &quot;' + "y" * 400 in html
    assert f'data-since="{task.date_started.isoformat()}"' in html  # live elapsed time
    orphan = make_task(owner="999999")
    html = admin_client.get(reverse("admin:djq_task_change", args=[orphan.id])).content.decode()
    assert "user #999999 (deleted)" in html


def _select(client: Client, action: str, tasks: list[Task], confirm: bool = False) -> str:
    data = {"action": action, "_selected_action": [str(t.id) for t in tasks]}
    if confirm:
        # Revoking asks first: a page that lists the tasks and changes nothing.
        before = {t.pk: (t.state, t.terminate) for t in Task.objects.all()}
        page = client.post(reverse(CHANGELIST), data)
        assert page.status_code == 200
        html = page.content.decode()
        assert 'name="post" value="yes"' in html and f"{len(tasks)} task(s)" in html
        assert all(str(t.id)[:8] in html for t in tasks)
        assert {t.pk: (t.state, t.terminate) for t in Task.objects.all()} == before
        data["post"] = "yes"
    response = client.post(reverse(CHANGELIST), data, follow=True)
    assert response.status_code == 200
    return " ".join(str(m) for m in response.context["messages"])


def test_action_retry(admin_client: Client) -> None:
    failed = make_task(states.FAILURE)
    ok = make_task(states.SUCCESS)
    waiting = make_task(states.PENDING)
    message = _select(admin_client, "retry_tasks", [failed, ok, waiting])
    assert "Retried 2 task(s)." in message and "1 not finished yet" in message
    for task in (failed, ok):
        task.refresh_from_db()
        assert (task.state, task.status, task.result) == (states.PENDING, broker.WAITING, None)
    waiting.refresh_from_db()
    assert waiting.status == broker.WAITING


def test_action_revoke(admin_client: Client) -> None:
    waiting = [make_task(states.PENDING) for _ in range(2)]
    running = make_task(states.STARTED)
    done = make_task(states.SUCCESS)
    message = _select(admin_client, "revoke_tasks", [*waiting, running, done], confirm=True)
    assert "Revoked 2 task(s)." in message
    assert "1 running task(s) left to finish" in message and "1 had already finished" in message
    for task in waiting:
        task.refresh_from_db()
        assert (task.state, task.status) == (states.REVOKED, broker.DONE)
    running.refresh_from_db()
    assert running.state == states.STARTED and running.terminate is None


def test_action_revoke_and_terminate(admin_client: Client) -> None:
    waiting = make_task(states.PENDING)
    running = make_task(states.STARTED)
    message = _select(admin_client, "terminate_tasks", [waiting, running], confirm=True)
    assert "Revoked 1 task(s)." in message and "1 running task(s) are being terminated" in message
    running.refresh_from_db()
    assert running.terminate == 15  # SIGTERM, kept on the row for its worker
    waiting.refresh_from_db()
    assert waiting.state == states.REVOKED


def test_detail_buttons(admin_client: Client) -> None:
    failed = make_task(states.FAILURE)
    response = admin_client.post(reverse("admin:djq_task_retry", args=[failed.id]), follow=True)
    assert "Task sent again under the same id." in response.content.decode()
    failed.refresh_from_db()
    assert failed.state == states.PENDING
    response = admin_client.post(reverse("admin:djq_task_revoke", args=[failed.id]),
                                 follow=True)
    assert "Revoked 1 task(s)." in response.content.decode()
    failed.refresh_from_db()
    assert failed.state == states.REVOKED
    running = make_task(states.STARTED)
    admin_client.post(reverse("admin:djq_task_revoke", args=[running.id]), {"terminate": "1"})
    running.refresh_from_db()
    assert running.terminate == 15
    assert admin_client.get(reverse("admin:djq_task_retry", args=[running.id])).status_code == 405
    missing = reverse("admin:djq_task_retry", args=[uuid.uuid4()])
    assert admin_client.post(missing).status_code == 404


def test_non_staff_cannot_open_the_admin(client: Client, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("plain", password="pw")
    client.force_login(user)
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_workers_page(admin_client: Client) -> None:
    make_worker("alive@host", alive=True, processed=1234)
    make_worker("dead@host", alive=False)
    html = admin_client.get(reverse("admin:djq_worker_changelist")).content.decode()
    assert "alive@host" in html and "dead@host" in html and "1234" in html
    assert 'title="alive"' in html and 'title="not alive"' in html
    html = admin_client.get(reverse("admin:djq_worker_changelist"), {"alive": "yes"}
                            ).content.decode()
    assert "alive@host" in html and "dead@host" not in html
    assert admin_client.get(reverse("admin:djq_worker_add")).status_code == 403


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_changelist_benchmark_runs(tmp_path: Any) -> None:
    """bench/admin_changelist.py at a tiny size, so it never rots (the README quotes it
    with a million rows)."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.test_bench_smoke import server_url

    env = dict(os.environ)
    env["DATABASE_URL"] = server_url()
    env.pop("DJANGO_SETTINGS_MODULE", None)
    name = f"djq_bench_admin_{os.getpid()}"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "admin_changelist.py"), "--rows", "3000",
         "--repeat", "1", "--database", name],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "change list, newest first" in done.stdout
    assert "djq_task_created" in done.stdout  # the newest-first index serves the list
