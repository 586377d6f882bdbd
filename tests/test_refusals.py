"""Nothing accepted is ignored: each Celery option works, or is refused naming itself
(issue 14)."""

from __future__ import annotations

import datetime
import logging

import pytest
from django.utils import timezone

from djq import Task, signature, task
from djq.models import Task as TaskRow
from tests.testapp.tasks import add

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("key, value", [
    ("exchange", "tasks"), ("exchange_type", "direct"), ("routing_key", "default"),
    ("producer", object()), ("connection", object()), ("publisher", object()),
    ("reply_to", "q"), ("correlation_id", "x"), ("compression", "zlib"),
    ("retry_policy", {"max_retries": 3}), ("serializer", "pickle"), ("retry", True),
    ("add_to_parent", False), ("delivery_mode", 1), ("delivery_mode", "transient"),
    ("mandatory", True), ("immediate", True),
])
def test_publishing_options_djq_cannot_honour_are_refused_by_name(key, value):
    with pytest.raises(ValueError, match=f"Option {key}=.* is not supported"):
        add.apply_async((1, 2), **{key: value})
    with pytest.raises(ValueError, match=f"Option {key}="):
        add.signature((1, 2), **{key: value})
    with pytest.raises(ValueError, match=f"Option {key}="):
        signature(add.name, args=(1, 2), options={key: value})
    assert not TaskRow.objects.exists()


@pytest.mark.parametrize("key, value", [
    ("serializer", "json"), ("retry", False), ("add_to_parent", True),
    ("delivery_mode", 2), ("delivery_mode", "persistent"), ("mandatory", False),
    ("immediate", False), ("exchange", None), ("routing_key", None),
])
def test_harmless_publishing_options_are_accepted(key, value):
    result = add.apply_async((1, 2), **{key: value})
    assert TaskRow.objects.filter(id=result.id).exists()


def test_rate_limit_is_refused_until_flow_control_delivers_it():
    with pytest.raises(NotImplementedError, match="rate_limit='2/m'"):
        task(name="tests.refused.rate_limited", rate_limit="2/m")(lambda: None)

    class Limited(Task):
        rate_limit = "10/s"

    with pytest.raises(NotImplementedError, match="rate_limit='10/s'"):
        task(name="tests.refused.base_rate_limited", base=Limited)(lambda: None)


@pytest.mark.parametrize("key, value", [
    ("serializer", "pickle"), ("trail", False), ("send_events", False),
    ("acks_on_failure_or_timeout", False), ("store_eager_result", True),
])
def test_task_options_djq_cannot_honour_are_refused_by_name(key, value):
    with pytest.raises(ValueError, match=f"task option {key}="):
        task(name=f"tests.refused.{key}", **{key: value})(lambda: None)


def test_unknown_task_options_and_method_names_are_refused():
    for key in ("backend", "delay", "run", "colour"):
        with pytest.raises(TypeError, match=f"Unknown task option {key!r}"):
            task(name=f"tests.refused.{key}", **{key: 1})(lambda: None)


def test_harmless_task_options_are_accepted():
    t = task(name="tests.accepted.harmless", serializer="json", trail=True,
             send_events=True, acks_on_failure_or_timeout=True,
             store_eager_result=False)(lambda: 1)
    assert t.serializer == "json"


def test_task_expires_is_the_default_expiry_of_its_calls():
    t = task(name="tests.accepted.expiring", expires=60)(lambda: 1)
    before = timezone.now()
    result = t.delay()
    row = TaskRow.objects.get(id=result.id)
    assert before + datetime.timedelta(seconds=59) < row.expires
    assert row.expires < timezone.now() + datetime.timedelta(seconds=61)
    given = t.apply_async(expires=3600)
    assert TaskRow.objects.get(id=given.id).expires > before + datetime.timedelta(seconds=3500)


def test_throws_logs_expected_errors_at_info_without_traceback(caplog):
    t = task(name="tests.accepted.throws", throws=(KeyError,))(_raise_key_error)
    caplog.set_level(logging.INFO, logger="djq.worker")
    from djq.task import Context
    from djq.trace import trace_task

    state, value, _ = trace_task(t, Context(id="9f0e9a8c-0000-4000-8000-000000000001",
                                            task=t.name, args=[], kwargs={},
                                            called_directly=False))
    assert state == "FAILURE" and isinstance(value, KeyError)
    records = [r for r in caplog.records if "raised" in r.getMessage()]
    assert [r.levelname for r in records] == ["INFO"]
    assert "raised expected" in records[0].getMessage()
    assert records[0].exc_info is None


def _raise_key_error() -> None:
    raise KeyError("expected")


@pytest.mark.parametrize("djq, error", [
    ({"task_max_deliveries": 0}, "djq.E020"),
    ({"task_max_deliveries": "5"}, "djq.E020"),
    ({"imports": "tests.testapp.jobs"}, "djq.E021"),
    ({"include": [42]}, "djq.E021"),
    ({"task_routes": [42]}, "djq.E022"),
    ({"task_routes": "no.such.router"}, "djq.E022"),
])
def test_bad_task_settings_are_system_check_errors(settings, djq, error):
    from djq.checks import check_task_settings

    settings.DJQ = djq
    assert [p.id for p in check_task_settings()] == [error]


def test_good_task_settings_pass_the_system_check(settings):
    from djq.checks import check_task_settings

    settings.DJQ = {"task_max_deliveries": 2, "imports": ["tests.testapp.jobs"],
                    "task_routes": [{"*": "q"}, "tests.test_routes.by_args"]}
    assert check_task_settings() == []
