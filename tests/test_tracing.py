"""OpenTelemetry (``DJQ["tracing"]``): one trace from a "web request" through ``delay()``
to the worker's run and the task it sends, read from the SDK's in-memory exporter here and
from the spans a real worker wrote."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from djq import group
from djq.exceptions import ImproperlyConfigured
from djq.models import Task as TaskRow
from tests.conftest import wait_for
from tests.testapp.tasks import add, fail, spawn_child

otel = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

pytestmark = pytest.mark.django_db(transaction=True)

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans(settings: Any) -> InMemorySpanExporter:
    """This process's spans, with tracing on (the provider is set once per process)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    settings.DJQ = {**settings.DJQ, "tracing": True}
    _EXPORTER.clear()
    return _EXPORTER


@pytest.fixture
def traced_worker(start_worker: Any, tmp_path: Path) -> Any:
    path = tmp_path / "spans.jsonl"

    def start() -> Any:
        start_worker(djq={"tracing": True}, env={"DJQ_TEST_SPANS": str(path)})
        return path

    return start


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_spans(path: Path, names: set[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def all_there() -> bool:
        found.clear()
        found.update({s["name"]: s for s in _read(path)})
        return names <= set(found)

    wait_for(all_there, timeout=30, message=f"spans {sorted(names)} in {path}")
    return found


def _hex(value: int) -> str:
    return f"0x{value:032x}"


def test_one_trace_from_request_through_delay_to_run_and_child(spans, traced_worker):
    path = traced_worker()
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("GET /report") as request_span:
        result = spawn_child.delay(41)
    trace_id = _hex(request_span.get_span_context().trace_id)

    (publish,) = spans.get_finished_spans()[:1]
    assert publish.name == "publish tests.testapp.tasks.spawn_child"
    assert publish.kind == trace.SpanKind.PRODUCER
    assert publish.parent.span_id == request_span.get_span_context().span_id
    assert publish.attributes["messaging.system"] == "djq"
    assert publish.attributes["messaging.message.id"] == result.id
    # The context travels in the stored headers, as W3C traceparent.
    headers = json.loads(TaskRow.objects.get(id=result.id).options)["headers"]
    assert headers["traceparent"].split("-")[1] == f"{publish.context.trace_id:032x}"

    child_id = result.get(timeout=30)
    assert add.AsyncResult(child_id).get(timeout=30) == 42
    got = _wait_spans(path, {"run tests.testapp.tasks.spawn_child",
                             "publish tests.testapp.tasks.add", "run tests.testapp.tasks.add"})
    run = got["run tests.testapp.tasks.spawn_child"]
    child_publish = got["publish tests.testapp.tasks.add"]
    child_run = got["run tests.testapp.tasks.add"]
    # One trace: request -> publish -> run -> publish (child) -> run (child).
    for span in (run, child_publish, child_run):
        assert span["context"]["trace_id"] == trace_id
    assert run["kind"] == "SpanKind.CONSUMER"
    assert run["parent_id"] == f"0x{publish.context.span_id:016x}"
    assert child_publish["parent_id"] == run["context"]["span_id"]
    assert child_run["parent_id"] == child_publish["context"]["span_id"]
    assert run["attributes"]["djq.task.state"] == "SUCCESS"
    assert run["attributes"]["messaging.message.id"] == result.id


def test_a_failing_task_is_an_error_span_with_its_exception(spans, traced_worker):
    path = traced_worker()
    result = fail.delay("traced boom")
    with pytest.raises(Exception, match="traced boom"):
        result.get(timeout=30)
    run = _wait_spans(path, {"run tests.testapp.tasks.fail"})["run tests.testapp.tasks.fail"]
    assert run["status"]["status_code"] == "ERROR"
    assert "traced boom" in run["status"]["description"]
    (event,) = [e for e in run["events"] if e["name"] == "exception"]
    assert "traced boom" in event["attributes"]["exception.message"]
    assert run["attributes"]["djq.task.state"] == "FAILURE"


def test_a_group_is_one_publish_span_every_member_carries(spans):
    result = group(add.s(i, i) for i in range(3)).apply_async()
    (publish,) = spans.get_finished_spans()
    assert publish.attributes["messaging.batch.message_count"] == 3
    for member in result.results:
        headers = json.loads(TaskRow.objects.get(id=member.id).options)["headers"]
        assert headers["traceparent"].split("-")[2] == f"{publish.context.span_id:016x}"


def test_delay_many_rows_carry_the_publish_span(spans):
    results = add.delay_many([((1, 2), {}), ((3, 4), {})])
    (publish,) = spans.get_finished_spans()
    assert publish.attributes["messaging.batch.message_count"] == 2
    for r in results:
        headers = json.loads(TaskRow.objects.get(id=r.id).options)["headers"]
        assert headers["traceparent"].split("-")[2] == f"{publish.context.span_id:016x}"


def test_tracing_off_writes_no_trace_headers(settings):
    settings.DJQ = {**settings.DJQ, "tracing": False}
    result = add.delay(1, 2)
    options = json.loads(TaskRow.objects.get(id=result.id).options or "{}")
    assert "traceparent" not in (options.get("headers") or {})


def test_tracing_without_the_api_installed_is_refused_by_name(settings, monkeypatch):
    settings.DJQ = {**settings.DJQ, "tracing": True}
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)  # as if not installed
    with pytest.raises(ImproperlyConfigured, match="tracing.*djq\\[otel\\]"):
        add.delay(1, 2)
    assert not TaskRow.objects.exists()
    with pytest.raises(SystemCheckError, match="tracing"):
        call_command("check")
