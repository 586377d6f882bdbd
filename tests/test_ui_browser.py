"""The admin and the monitor in headless Chromium (Playwright) at 1280×800, the size a
newcomer's laptop shows: the time columns are visible, a 200-character name and a
400-character argument never widen the page, the monitor follows the admin's dark mode,
terminating asks first, and the permission matrix holds in the browser. The screenshots
in docs/ come from here (``DJQ_DOCS_SCREENSHOTS=1`` writes them there; otherwise to
test-artifacts/)."""

from __future__ import annotations

import datetime
import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from djq import broker, states
from djq.models import Task
from tests.conftest import ROOT
from tests.rows import grant, make_task, make_worker

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
DOCS = ROOT / "docs"
WIDTH, HEIGHT = 1280, 800

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow,
              pytest.mark.timeout(180)]

ADD = "tests.testapp.tasks.add"
LONG_NAME = "tests.testapp.tasks." + "very_long_task_name_segment_" * 6 + "x" * 12
LONG_ARG = "argument-" + "0123456789abcdef" * 24 + "-end"
NO_OVERFLOW = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            yield chromium
            chromium.close()


@pytest.fixture
def open_as(browser: Any, live_server: Any, django_user_model: Any) -> Iterator[Any]:
    """``open_as(user, color_scheme="light")``: a 1280×800 page signed in as ``user``."""
    contexts: list[Any] = []

    def open_page(user: Any, color_scheme: str = "light") -> Any:
        client = Client()
        client.force_login(user)
        context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT},
                                      color_scheme=color_scheme)
        context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                              "url": live_server.url}])
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.base = live_server.url
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def superuser(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("ops", password="ops-pw")


def shot(page: Any, name: str, full_page: bool = False, docs: bool = False) -> None:
    """A screenshot in test-artifacts/; the README's (``docs=True``) go to docs/ instead
    when DJQ_DOCS_SCREENSHOTS=1."""
    folder = DOCS if docs and os.environ.get("DJQ_DOCS_SCREENSHOTS") == "1" else ARTIFACTS
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=full_page)


def history(count: int = 240) -> None:
    """Finished tasks over the last hour (a quiet gap in it), so the charts have data."""
    now = timezone.now()
    rng = random.Random(6)
    rows = []
    for _ in range(count):
        ago = rng.uniform(30, 3600)
        if 1500 < ago < 1800:
            continue  # five quiet minutes: the charts show a gap, not zero
        done = now - datetime.timedelta(seconds=ago)
        failed = rng.random() < 0.08
        rows.append(Task(
            id=uuid.uuid4(), name=rng.choice([ADD, "tests.testapp.tasks.echo"]),
            state=states.FAILURE if failed else states.SUCCESS, status=broker.DONE,
            queue=rng.choice(["default", "default", "reports"]), args="[1, 2]",
            result='{"exc_type": "ValueError", "exc_message": ["boom"]}' if failed else "3",
            traceback="Traceback (most recent call last):\nValueError: boom\n" if failed else None,
            worker="w1@test", run_at=done, date_created=done - datetime.timedelta(seconds=2),
            date_started=done - datetime.timedelta(seconds=1), date_done=done))
    Task.objects.bulk_create(rows)


VISIBLE = """(selector) => {
    const node = document.querySelector(selector);
    if (!node) return false;
    const box = node.getBoundingClientRect();
    if (box.width === 0 || box.left < 0 || box.right > window.innerWidth) return false;
    // Not clipped or scrolled away by any container either.
    for (let up = node.parentElement; up; up = up.parentElement) {
        if (/(auto|scroll|hidden|clip)/.test(getComputedStyle(up).overflowX)) {
            const frame = up.getBoundingClientRect();
            if (box.right > frame.right + 0.5 || box.left < frame.left - 0.5) return false;
        }
    }
    return true;
}"""


def visible(page: Any, selector: str) -> bool:
    """Whether the element is shown whole horizontally: in the viewport, and neither
    clipped nor scrolled away by a container."""
    return bool(page.evaluate(VISIBLE, selector))


def test_admin_list_and_task_page_fit_1280(open_as: Any, superuser: Any) -> None:
    history(60)
    make_worker("w1@test")
    running = make_task(states.STARTED, name=ADD, args=[2, 3])
    long = make_task(states.FAILURE, name=LONG_NAME, args=[LONG_ARG, 7],
                     kwargs={"note": LONG_ARG}, worker="worker-with-a-long-hostname@build-7")
    page = open_as(superuser)
    page.goto(f"{page.base}/admin/djq/task/")
    page.wait_for_selector("#result_list")
    shot(page, "admin.png", docs=True)
    for column in ("created", "runtime", "state_colour", "worker"):
        assert visible(page, f"#result_list th.column-{column}"), column
    assert page.evaluate(NO_OVERFLOW), "the change list scrolls sideways"
    # Relative times, absolute time and zone on hover; the running task counts live.
    created = page.locator(f'tr:has(a[title="{long.pk}"]) td.field-created time')
    assert created.inner_text().endswith("ago") or created.inner_text() == "just now"
    assert created.get_attribute("title").endswith(" UTC")
    elapsed = page.locator(f'tr:has(a[title="{running.pk}"]) .djq-elapsed')
    first = elapsed.inner_text()
    assert first.startswith("running ")
    page.wait_for_function(
        "([sel, before]) => document.querySelector(sel).textContent !== before",
        arg=[f'tr:has(a[title="{running.pk}"]) .djq-elapsed', first])

    # The short id's copy button copies the full id.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=page.base)
    page.click(f'.djq-copy[data-copy="{long.pk}"]')
    page.wait_for_selector(f'.djq-copy.djq-copied[data-copy="{long.pk}"]')
    assert page.evaluate("navigator.clipboard.readText()") == str(long.pk)

    page.goto(f"{page.base}/admin/djq/task/{long.pk}/change/")
    page.wait_for_selector("text=ValueError: boom")
    assert page.inner_text("#content h1") == "Task"
    assert page.evaluate(NO_OVERFLOW), "the task page scrolls sideways"
    # The buttons sit beside the content, not on top of the title.
    tools = page.locator(".object-tools").bounding_box()
    title = page.locator("#content h2").first.bounding_box()
    assert tools["y"] >= title["y"] + title["height"] - 1 or \
        tools["x"] >= title["x"] + title["width"]
    created_text = page.inner_text(".field-created_at .readonly")
    assert " UTC (" in created_text  # absolute to the second, with its zone, and relative
    shot(page, "admin-task.png", docs=True)

    page.goto(f"{page.base}/admin/djq/worker/")
    page.wait_for_selector("#result_list")
    shot(page, "admin-workers.png")
    for column in ("heartbeat", "done_failed", "load", "queue_list", "started"):
        assert visible(page, f"#result_list th.column-{column}"), column
    assert page.evaluate(NO_OVERFLOW)


def test_monitor_follows_the_admin_theme_and_warns_of_stuck_queues(
        open_as: Any, superuser: Any) -> None:
    history()
    make_worker("w1@test", queues="default,reports")
    make_worker("a-worker-with-a-rather-long-hostname-for-the-table@build-host-42.example.org",
                queues="default")
    for _ in range(3):
        make_task(states.PENDING, queue="orphans")  # no worker reads "orphans"
    for _ in range(60):
        make_task(states.SUCCESS)
    make_task(states.STARTED, name=LONG_NAME, args=[LONG_ARG])
    page = open_as(superuser, color_scheme="dark")
    page.goto(f"{page.base}/djq/")
    page.wait_for_selector('#queues tr[data-queue="orphans"][data-stuck="true"]')
    warning = page.inner_text('#djq-warnings .djq-warning[data-queue="orphans"]')
    assert "3 waiting task(s) and no live worker reading it" in warning
    assert page.locator('#queues tr[data-stuck="true"]').count() == 1
    page.wait_for_selector("#chart-throughput polyline")
    page.wait_for_selector('#workers tr[data-alive="true"]')

    # Dark, as the admin is for this browser: the admin's own variables.
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(18, 18, 18)", background  # --body-bg in dark_mode.css
    assert page.evaluate(NO_OVERFLOW), "the monitor scrolls sideways"
    for selector in ("#workers th:last-child", "#queues th:last-child", "#tasks th:last-child"):
        assert visible(page, selector), selector

    # The failure-rate chart: a gap for the quiet minutes, volume bars, hover values.
    assert page.locator('#chart-failures polyline[data-series="failure rate"]').count() >= 2
    assert page.locator("#chart-failures rect.djq-volume").count() > 10
    box = page.locator("#chart-failures").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.98, box["y"] + box["height"] / 2)
    tip = page.locator("#chart-failures ~ .djq-tip")
    tip.wait_for(state="visible")
    assert "failure rate:" in tip.inner_text() and "finished:" in tip.inner_text()
    assert tip.inner_text().splitlines()[0].endswith(" UTC")
    page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] / 2)
    assert "failure rate: no data" in tip.inner_text()  # inside the quiet gap
    shot(page, "monitor-dark.png", docs=True)

    # "Load more" past the first fifty.
    page.wait_for_function("document.querySelectorAll('#tasks tbody tr[data-id]').length === 50")
    page.click("#tasks-more")
    page.wait_for_function("document.querySelectorAll('#tasks tbody tr[data-id]').length > 50")
    # Running tasks, whatever their state, and a live elapsed time.
    page.select_option("#task-filters select[name=state]", "running")
    page.wait_for_function("document.querySelectorAll('#tasks tbody tr[data-id]').length === 1")
    assert page.inner_text("#tasks tbody .djq-runtime").startswith("running ")
    assert page.evaluate(NO_OVERFLOW)

    # The admin's theme toggle works here too, and is shared with the admin.
    assert page.inner_text(".djq-theme") == "theme: auto"
    page.click(".djq-theme")  # auto (dark here) -> light
    assert page.evaluate("localStorage.getItem('theme')") == "light"
    assert page.inner_text(".djq-theme") == "theme: light"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
    page.evaluate("localStorage.removeItem('theme')")
    page.emulate_media(color_scheme="light")
    page.select_option("#task-filters select[name=state]", "")
    page.wait_for_function("document.querySelectorAll('#tasks tbody tr[data-id]').length === 50")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "monitor.png", docs=True)


def test_terminate_asks_first(open_as: Any, superuser: Any) -> None:
    running = make_task(states.STARTED, name=LONG_NAME, args=[LONG_ARG, 7])
    page = open_as(superuser)
    page.goto(f"{page.base}/djq/tasks/{running.pk}/")
    page.wait_for_selector('#djq-task[data-status="started"]')
    assert page.evaluate(NO_OVERFLOW), "a long name or argument widens the task page"
    assert page.inner_text("#f-runtime").startswith("running ")
    assert page.get_attribute("#task-admin-link", "href") == f"/admin/djq/task/{running.pk}/change/"
    shot(page, "monitor-task.png", docs=True)
    questions: list[str] = []

    def dismiss(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.click("#btn-terminate")
    page.wait_for_timeout(300)
    assert questions and "terminate" in questions[0]
    running.refresh_from_db()
    assert running.terminate is None and running.state == states.STARTED  # said no

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#btn-terminate")
    page.wait_for_function(
        "document.getElementById('action-result').textContent.includes('terminated')")
    running.refresh_from_db()
    assert running.terminate == 15

    # The admin's button asks too; the task page there links back to the monitor.
    other = make_task(states.STARTED)
    page.goto(f"{page.base}/admin/djq/task/{other.pk}/change/")
    questions.clear()
    page.once("dialog", dismiss)
    page.click("button[name=djq-terminate]")
    page.wait_for_timeout(300)
    assert questions and "terminate" in questions[0]
    other.refresh_from_db()
    assert other.terminate is None
    assert page.get_attribute("#djq-monitor-link", "href") == f"/djq/tasks/{other.pk}/"
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button[name=djq-terminate]")
    page.wait_for_selector(".messagelist")
    other.refresh_from_db()
    assert other.terminate == 15

    # The bulk action shows a confirmation page first.
    third = make_task(states.STARTED)
    page.goto(f"{page.base}/admin/djq/task/")
    page.check(f'input[name=_selected_action][value="{third.pk}"]')
    page.select_option("select[name=action]", "terminate_tasks")
    page.click("button[name=index]")
    page.wait_for_selector("input[name=djq-confirm]")
    third.refresh_from_db()
    assert third.terminate is None
    shot(page, "admin-confirm-terminate.png")
    page.click("input[name=djq-confirm]")
    page.wait_for_selector(".messagelist")
    third.refresh_from_db()
    assert third.terminate == 15


@pytest.mark.parametrize("level", ["none", "view", "change"])
def test_permission_matrix_in_the_browser(level: str, open_as: Any,
                                          django_user_model: Any) -> None:
    perms = {"none": (), "view": ("view_task", "view_worker"),
             "change": ("view_task", "change_task", "view_worker")}[level]
    user = django_user_model.objects.create_user(f"staff-{level}", password="pw",
                                                 is_staff=True)
    if perms:
        user = grant(user, *perms)
    task = make_task(states.FAILURE)
    page = open_as(user)
    admin = page.goto(f"{page.base}/admin/djq/task/")
    monitor = page.goto(f"{page.base}/djq/")
    if level == "none":
        assert admin.status == 403 and monitor.status == 403
        assert "djq.view_task" in page.inner_text("main")
    else:
        assert admin.status == 200 and monitor.status == 200
        page.wait_for_selector(f'#tasks tr[data-id="{task.pk}"]')
    api = page.evaluate("""async (url) => {
        const r = await fetch(url, {credentials: 'same-origin'});
        return [r.status, await r.json()];
    }""", f"/api/djq/tasks/{task.pk}/")
    assert api[0] == (403 if level == "none" else 200), api
    retry = page.evaluate("""async (url) => {
        const r = await fetch(url, {method: 'POST', credentials: 'same-origin',
            headers: {'Content-Type': 'application/json',
                      'X-CSRFToken': document.querySelector('meta[name=csrf-token]').content},
            body: '{}'});
        return r.status;
    }""", f"/djq/data/tasks/{task.pk}/retry/")
    assert retry == (200 if level == "change" else 403)
    if level != "none":
        page.goto(f"{page.base}/djq/tasks/{task.pk}/")
        page.wait_for_selector("#djq-task[data-state]")
        assert page.locator("#btn-retry").count() == (1 if level == "change" else 0)
        assert page.locator("#btn-terminate").count() == 0
        shot(page, f"permissions-{level}.png")


def test_swagger_ui_runs_offline(open_as: Any, superuser: Any) -> None:
    page = open_as(superuser)
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url)
            if not r.url.startswith(page.base) else None)
    page.goto(f"{page.base}/api/djq/docs/")
    page.wait_for_selector(".swagger-ui .opblock-tag")
    assert page.locator(".opblock").count() >= 7  # every endpoint of the API
    assert outside == []  # no CDN
    shot(page, "api-docs.png")
