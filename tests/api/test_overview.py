"""``workers/``, ``queues/``, ``stats/`` and ``schema/``."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from djq import broker, states
from tests.api.conftest import API
from tests.rows import make_task, make_worker

pytestmark = pytest.mark.django_db


def test_workers(staff_api: APIClient) -> None:
    alive = make_worker("alive@host", queues="default,special")
    dead = make_worker("dead@host", alive=False, loadavg="")
    body = staff_api.get(f"{API}workers/").json()
    assert set(body) == {"next", "previous", "results"}
    rows = {w["hostname"]: w for w in body["results"]}
    assert [w["id"] for w in body["results"]] == [dead.id, alive.id]  # newest first
    assert rows["alive@host"]["alive"] is True and rows["dead@host"]["alive"] is False
    assert rows["alive@host"]["queues"] == ["default", "special"]
    assert rows["alive@host"]["loadavg"] == [0.5, 0.4, 0.3]
    assert rows["dead@host"]["loadavg"] == []
    assert rows["alive@host"]["processed"] == 10 and rows["alive@host"]["concurrency"] == 2
    page = staff_api.get(f"{API}workers/?page_size=1").json()
    assert len(page["results"]) == 1 and page["next"]
    assert staff_api.get(page["next"]).json()["results"][0]["hostname"] == "alive@host"


def test_a_worker_past_its_lease_is_not_alive(staff_api: APIClient) -> None:
    make_worker("silent@host", last_heartbeat=timezone.now() - datetime.timedelta(minutes=10))
    assert staff_api.get(f"{API}workers/").json()["results"][0]["alive"] is False


def test_queues(staff_api: APIClient) -> None:
    now = timezone.now()
    make_worker("w@host", queues="default,special")
    make_task(states.PENDING, created=now - datetime.timedelta(seconds=30))
    make_task(states.PENDING)
    make_task(states.PENDING, run_at=now + datetime.timedelta(hours=1))  # scheduled
    make_task(states.STARTED)
    for _ in range(5):
        make_task(states.SUCCESS, queue="special", created=now - datetime.timedelta(minutes=1))
    make_task(states.FAILURE, queue="special", created=now - datetime.timedelta(minutes=1))
    make_task(states.SUCCESS, queue="old", created=now - datetime.timedelta(hours=2),
              date_done=now - datetime.timedelta(hours=2))
    body = staff_api.get(f"{API}queues/").json()
    assert body["next"] is None
    queues = {q["name"]: q for q in body["results"]}
    assert set(queues) == {"default", "special"}  # "old" has no traffic, tasks or workers
    default = queues["default"]
    assert (default["waiting"], default["scheduled"], default["active"]) == (2, 1, 1)
    assert 29 <= default["oldest_waiting_age"] < 60
    assert default["enqueued_per_minute"] == pytest.approx(0.8)  # 4 rows in 5 minutes
    assert default["workers"] == 1
    special = queues["special"]
    assert special["waiting"] == 0 and special["oldest_waiting_age"] is None
    assert special["processed_per_minute"] == pytest.approx(1.2)
    assert special["failed_per_minute"] == pytest.approx(0.2)


def test_queues_always_show_the_default_queue(staff_api: APIClient) -> None:
    results = staff_api.get(f"{API}queues/").json()["results"]
    assert [q["name"] for q in results] == ["default"]
    assert results[0]["waiting"] == 0


def test_stats(staff_api: APIClient) -> None:
    make_worker("w@host", concurrency=4, active=3)
    make_worker("gone@host", alive=False)
    make_task(states.PENDING)
    make_task(states.PENDING, run_at=timezone.now() + datetime.timedelta(minutes=5))
    make_task(states.RECEIVED, status=broker.CLAIMED)
    make_task("PROGRESS", result={"progress": 10})
    make_task(states.SUCCESS)
    make_task(states.FAILURE)
    make_task(states.SUCCESS, date_done=timezone.now() - datetime.timedelta(hours=3))
    body = staff_api.get(f"{API}stats/").json()
    assert body["tasks"]["waiting"] == 1 and body["tasks"]["scheduled"] == 1
    assert body["tasks"]["claimed"] == 1 and body["tasks"]["started"] == 1
    assert body["unfinished_by_state"] == {"PENDING": 2, "PROGRESS": 1, "RECEIVED": 1}
    assert body["finished_last_hour"] == {"FAILURE": 1, "SUCCESS": 1}
    assert body["rates"]["processed_per_minute"] == pytest.approx(0.4)
    assert body["rates"]["failed_per_minute"] == pytest.approx(0.2)
    assert body["workers"] == {"alive": 1, "processes": 4, "active": 3}


def test_schema(staff_api: APIClient) -> None:
    response = staff_api.get(f"{API}schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {
        "/api/djq/tasks/", "/api/djq/tasks/{id}/", "/api/djq/tasks/{id}/retry/",
        "/api/djq/tasks/{id}/revoke/", "/api/djq/workers/", "/api/djq/queues/",
        "/api/djq/stats/", "/api/djq/periodic-tasks/", "/api/djq/periodic-tasks/{id}/",
        "/api/djq/periodic-tasks/{id}/run/",
    }
    listing = schema["paths"]["/api/djq/tasks/"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"state", "name", "queue", "worker", "created_after", "created_before", "search",
            "cursor", "page_size"} <= names
    assert "post" in schema["paths"]["/api/djq/tasks/"]
    yaml = staff_api.get(f"{API}schema/")
    assert yaml.status_code == 200 and b"openapi: 3" in yaml.content


def test_root_links_every_endpoint_and_docs_are_served_locally(staff_api: APIClient,
                                                               anon_api: APIClient) -> None:
    root = staff_api.get(f"{API}").json()
    assert set(root) == {"tasks", "workers", "queues", "periodic-tasks", "stats", "schema",
                         "docs"}
    assert root["docs"].endswith("/api/djq/docs/") and root["stats"].endswith("/api/djq/stats/")
    docs = staff_api.get(f"{API}docs/", HTTP_ACCEPT="text/html")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert 'data-schema-url="/api/djq/schema/"' in html
    assert '/api/djq/docs/assets/swagger-ui-bundle.js' in html
    assert "cdn" not in html.lower() and "https://" not in html
    bundle = staff_api.get(f"{API}docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and b"SwaggerUIBundle" in b"".join(bundle.streaming_content)
    assert staff_api.get(f"{API}docs/assets/..%2Fredoc%2Fbundles%2Fredoc.standalone.js"
                         ).status_code == 404
    assert staff_api.get(f"{API}docs/assets/index.html").status_code == 404
    refused = anon_api.get(f"{API}docs/", HTTP_ACCEPT="text/html")  # api_permission_classes
    assert refused.status_code == 403 and refused["Content-Type"] == "application/json"
    assert refused.json() == {"detail": "Authentication credentials were not provided."}
