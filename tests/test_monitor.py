"""The live monitor in headless Chromium (Playwright), against a live server and a real
worker: sign in as staff, send a task from the page and watch it go from waiting to done
without a reload, follow a long task's progress and revoke it with the button, and check
that other users are refused. Screenshots go to test-artifacts/ (git-ignored)."""

from __future__ import annotations

import datetime
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from djq import broker, states
from djq.models import Task
from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow,
              pytest.mark.timeout(180)]

ADD = "tests.testapp.tasks.add"
PROGRESS = "tests.testapp.tasks.progress"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # meanwhile are ordinary blocking calls, which Django would otherwise refuse here.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            yield chromium
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def shot(page: Any, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=full_page)


def history(hours: float = 1.0, count: int = 240) -> None:
    """Finished tasks spread over the last hour, so the charts have something to draw."""
    now = timezone.now()
    rng = random.Random(6)
    rows = []
    for _ in range(count):
        done = now - datetime.timedelta(seconds=rng.uniform(30, hours * 3600))
        failed = rng.random() < 0.08
        rows.append(Task(
            id=uuid.uuid4(), name=rng.choice([ADD, "tests.testapp.tasks.echo"]),
            state=states.FAILURE if failed else states.SUCCESS, status=broker.DONE,
            queue=rng.choice(["default", "default", "special"]), args="[1, 2]",
            result='{"exc_type": "ValueError", "exc_message": ["boom"]}' if failed else "3",
            traceback="Traceback (most recent call last):\nValueError: boom\n" if failed else None,
            worker="w1@test", run_at=done, date_created=done - datetime.timedelta(seconds=2),
            date_started=done - datetime.timedelta(seconds=1), date_done=done))
    Task.objects.bulk_create(rows)


def sign_in(page: Any, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/djq/")
    assert "/admin/login/" in page.url  # anonymous users are sent to sign in first
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/djq/")


def test_staff_watches_tasks_live_and_revokes_one(
        page: Any, live_server: Any, start_worker: Callable[..., Any], settings: Any,
        django_user_model: Any) -> None:
    settings.DJQ = {**settings.DJQ, "api_enqueue_allowlist": [ADD, PROGRESS]}
    django_user_model.objects.create_user("ops", password="ops-pw", is_staff=True,
                                          is_superuser=True)
    history()
    start_worker()
    base = live_server.url
    sign_in(page, base, "ops", "ops-pw")
    page.wait_for_selector('#workers tr[data-hostname="w1@test"][data-alive="true"]')
    page.wait_for_selector('#queues tr[data-queue="default"]')
    page.evaluate("window.__notReloaded = true")

    # Send add(2, 3) from the page, three seconds from now: it waits, then runs.
    page.select_option("#enqueue select[name=name]", ADD)
    page.fill("#enqueue input[name=args]", "[2, 3]")
    page.fill("#enqueue input[name=countdown]", "3")
    page.click("#enqueue button[type=submit]")
    link = page.wait_for_selector("#enqueue-result a[data-task-id]")
    task_id = link.get_attribute("data-task-id")
    row = f'#tasks tr[data-id="{task_id}"]'
    page.wait_for_selector(f'{row}[data-state="PENDING"]')
    shot(page, "monitor-waiting.png")
    page.wait_for_selector(f'{row}[data-state="SUCCESS"]', timeout=30_000)
    assert page.evaluate("window.__notReloaded") is True
    assert Task.objects.get(pk=task_id).result == "5"

    # Filters narrow the live table.
    page.select_option("#task-filters select[name=state]", "FAILURE")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#tasks tbody tr[data-state]')]"
        ".every(r => r.dataset.state === 'FAILURE') "
        "&& document.querySelectorAll('#tasks tbody tr[data-state]').length > 0")
    page.select_option("#task-filters select[name=state]", "")

    # A long task: follow its progress on its page, then revoke it with the button.
    long = page.evaluate(
        """async (name) => {
            const r = await fetch(document.getElementById('djq-monitor').dataset.tasksUrl, {
                method: 'POST', credentials: 'same-origin',
                headers: {'Content-Type': 'application/json',
                          'X-CSRFToken': document.querySelector('meta[name=csrf-token]').content},
                body: JSON.stringify({name: name, args: [100, 0.3]})});
            return (await r.json()).id;
        }""", PROGRESS)
    page.click(f'#tasks tr[data-id="{long}"] a', timeout=10_000)
    page.wait_for_url(f"{base}/djq/tasks/{long}/")
    page.wait_for_selector("#task-progress:not([hidden])")
    page.wait_for_function(
        "() => Number(document.getElementById('task-progress-bar').value) >= 2")
    assert page.is_disabled("#btn-retry") and page.is_enabled("#btn-terminate")
    shot(page, "monitor-task-progress.png")
    page.once("dialog", lambda dialog: dialog.accept())  # "Revoke and terminate?" Yes.
    page.click("#btn-terminate")
    page.wait_for_selector('#djq-task[data-state="REVOKED"]', timeout=30_000)
    assert "being terminated" in page.inner_text("#action-result")
    assert page.is_enabled("#btn-retry") and page.is_disabled("#btn-terminate")
    assert Task.objects.get(pk=long).state == states.REVOKED
    shot(page, "monitor-task-revoked.png")

    # The monitor with everything on it, and the admin's task browser and detail page.
    page.goto(f"{base}/djq/")
    page.wait_for_selector(f'#tasks tr[data-id="{long}"][data-state="REVOKED"]')
    page.wait_for_selector("#chart-throughput polyline")
    page.wait_for_selector('#workers tr[data-alive="true"]')
    page.set_viewport_size({"width": 1440, "height": 1250})
    shot(page, "monitor.png", full_page=False)
    page.set_viewport_size({"width": 1860, "height": 900})
    page.evaluate("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    page.goto(f"{base}/admin/djq/task/")
    page.wait_for_selector("#result_list")
    assert task_id in page.content()
    shot(page, "admin-changelist.png", full_page=False)
    failed = Task.objects.filter(state=states.FAILURE).first()
    assert failed is not None
    page.goto(f"{base}/admin/djq/task/{failed.pk}/change/")
    page.wait_for_selector("text=ValueError: boom")
    shot(page, "admin-task.png", full_page=False)


def test_other_users_are_refused(page: Any, live_server: Any, django_user_model: Any) -> None:
    task = Task.objects.create(
        id=uuid.uuid4(), name=ADD, queue="default", run_at=timezone.now(),
        date_created=timezone.now())
    user = django_user_model.objects.create_user("guest", password="guest-pw")
    client = Client()
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                               "url": live_server.url}])
    base = live_server.url
    for url in (f"{base}/djq/tasks/{task.pk}/", f"{base}/djq/"):
        response = page.goto(url)
        assert response.status == 403, url
        assert "Staff only" in page.inner_text("h1")
        assert "guest" in page.inner_text("main")
    shot(page, "monitor-refused.png", full_page=False)
    data = page.goto(f"{base}/djq/data/tasks/")
    assert data.status == 403
    assert str(task.pk) not in page.content()
    revoke = page.evaluate(
        """async (url) => (await fetch(url, {method: 'POST'})).status""",
        f"{base}/djq/data/tasks/{task.pk}/revoke/")
    assert revoke == 403
    task.refresh_from_db()
    assert task.state == states.PENDING
