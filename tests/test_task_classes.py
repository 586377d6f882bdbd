"""Task classes and Celery's handlers, run by a real worker (issue 14)."""

from __future__ import annotations

import pytest

from djq import states
from djq.task import registry
from tests.conftest import wait_for
from tests.testapp.models import SideEffect
from tests.testapp.tasks import (
    HOOK_PREFIX,
    add,
    hooked,
    multiply,
    shared_retry_div,
    wrapped_add,
)

pytestmark = pytest.mark.django_db(transaction=True)


def notes(task_id: str) -> list[str]:
    return list(SideEffect.objects.filter(key=f"{HOOK_PREFIX}{task_id}")
                .order_by("id").values_list("value", flat=True))


def test_success_calls_handlers_in_celerys_order(worker):
    result = hooked.delay("ok", extra=1)
    assert result.get(timeout=20) == "ok"
    wait_for(lambda: "signal task_postrun" in notes(result.id), message="postrun")
    assert notes(result.id) == [
        "signal task_prerun",
        "before_start ['ok'] {'extra': 1}",
        "run",
        "on_success 'ok'",
        "signal task_success",
        "after_return SUCCESS 'ok' False",
        "signal task_postrun",
    ]


def test_failure_calls_on_failure_before_the_signal_then_after_return(worker):
    result = hooked.delay("fail")
    with pytest.raises(ValueError, match="hooked fail"):
        result.get(timeout=20)
    wait_for(lambda: "signal task_postrun" in notes(result.id), message="postrun")
    assert notes(result.id) == [
        "signal task_prerun",
        "before_start ['fail'] {}",
        "run",
        "on_failure ValueError('hooked fail') True",
        "signal task_failure",
        "after_return FAILURE ValueError('hooked fail') True",
        "signal task_postrun",
    ]


def test_retry_calls_on_retry_and_no_after_return_for_the_retried_attempt(worker):
    result = hooked.delay("retry")
    assert result.get(timeout=20) == "retry"
    wait_for(lambda: notes(result.id).count("signal task_postrun") == 2, message="postruns")
    assert notes(result.id) == [
        "signal task_prerun",
        "before_start ['retry'] {}",
        "run",
        "on_retry KeyError('again') True",
        "signal task_retry",
        "signal task_postrun",
        "signal task_prerun",
        "before_start ['retry'] {}",
        "run",
        "on_success 'retry'",
        "signal task_success",
        "after_return SUCCESS 'retry' False",
        "signal task_postrun",
    ]


def test_raising_before_start_fails_the_task_and_the_body_never_runs(worker):
    result = hooked.delay("before_start_raises")
    with pytest.raises(RuntimeError, match="refused in before_start"):
        result.get(timeout=20)
    wait_for(lambda: "signal task_postrun" in notes(result.id), message="postrun")
    assert "run" not in notes(result.id)
    assert "on_failure RuntimeError('refused in before_start') True" in notes(result.id)


def test_raising_on_failure_is_logged_and_the_tasks_own_error_stays_stored(worker):
    result = hooked.delay("failure_handler_raises")
    with pytest.raises(ValueError, match="hooked failure_handler_raises"):
        result.get(timeout=20)
    assert result.state == states.FAILURE
    wait_for(lambda: "on_failure broke" in worker.output(), message="the handler's error logged")
    # The worker goes on.
    assert hooked.delay("ok").get(timeout=20) == "ok"


def test_raising_on_success_is_logged_and_the_result_stays_stored(worker):
    result = hooked.delay("success_handler_raises")
    assert result.get(timeout=20) == "success_handler_raises"
    assert result.state == states.SUCCESS
    wait_for(lambda: "on_success broke" in worker.output(), message="the handler's error logged")


def test_abstract_base_options_apply_to_its_tasks(worker):
    assert shared_retry_div.max_retries == 2
    result = shared_retry_div.delay(1, 0)
    with pytest.raises(ZeroDivisionError):
        result.get(timeout=20)
    assert result.retries == 2
    assert notes(result.id) == ["attempt 0", "attempt 1", "attempt 2"]


def test_class_based_task_runs_in_the_worker(worker):
    assert multiply.name == "tests.testapp.tasks.Multiply"
    assert registry[multiply.name] is multiply
    assert multiply(3, 4) == 12
    assert multiply.delay(6, 7).get(timeout=20) == 42
    with pytest.raises(TypeError):
        multiply.delay(1)


def test_base_with_its_own_call_wraps_each_run(worker):
    assert wrapped_add.delay(1, 2).get(timeout=20) == {"wrapped": 3}


def test_handlers_run_under_apply_too():
    result = hooked.apply(("ok",))
    assert result.get() == "ok"
    assert [n for n in notes(result.id) if not n.startswith("signal")] == [
        "before_start ['ok'] {}", "run", "on_success 'ok'", "after_return SUCCESS 'ok' False",
    ]


def test_shadow_names_the_task_in_the_workers_log(worker):
    result = add.apply_async((1, 1), shadow="shown.as.this")
    assert result.get(timeout=20) == 2
    wait_for(lambda: f"Task shown.as.this[{result.id}] succeeded in" in worker.output(),
             message="the shadow name in the log")
