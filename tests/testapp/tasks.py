"""Tasks the tests send to real workers."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from djq import Task, register_task, signals, task
from djq.exceptions import SoftTimeLimitExceeded
from djq.utils.log import get_task_logger

from .models import SideEffect

logger = get_task_logger(__name__)


@task
def add(x: Any, y: Any) -> Any:
    return x + y


@task
def echo(*args: Any, **kwargs: Any) -> Any:
    return {"args": list(args), "kwargs": kwargs}


@task
def identity(value: Any) -> Any:
    return value


@task
def noop(*args: Any, **kwargs: Any) -> None:
    return None


@task
def record(key: str, value: str = "") -> int:
    SideEffect.objects.create(key=key, value=value, pid=os.getpid())
    return os.getpid()


@task
def sleep(seconds: float, key: str | None = None) -> float:
    if key:
        SideEffect.objects.create(key=key, value="start", pid=os.getpid())
    time.sleep(seconds)
    if key:
        SideEffect.objects.create(key=key, value="end", pid=os.getpid())
    return seconds


@task
def fail(message: str = "boom") -> None:
    raise ValueError(message)


class CustomError(Exception):
    pass


@task
def fail_custom(message: str = "custom") -> None:
    raise CustomError(message)


@task
def raise_system_exit() -> None:
    raise SystemExit(3)


@task
def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt()


@task
def exit_process(code: int = 1) -> None:
    os._exit(code)


@task
def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@task(bind=True)
def custom_state(self: Any, state: str, meta: Any, hold: float = 0.0) -> str:
    self.update_state(state=state, meta=meta)
    time.sleep(hold)
    return "done"


@task(bind=True)
def progress(self: Any, steps: int, delay: float) -> int:
    for i in range(steps):
        self.update_state(state="PROGRESS", meta={"progress": int(100 * (i + 1) / steps)})
        time.sleep(delay)
    return steps


@task(bind=True, max_retries=2, default_retry_delay=0.2)
def div(self: Any, x: float, y: float) -> float:
    try:
        return x / y
    except ZeroDivisionError as exc:
        raise self.retry(exc=exc)


@task(bind=True, max_retries=2, default_retry_delay=0.2)
def retry_without_exc(self: Any) -> None:
    raise self.retry()


@task(bind=True, max_retries=None, default_retry_delay=0.05)
def retry_until(self: Any, key: str, succeed_after: int) -> int:
    SideEffect.objects.create(key=key, value=str(self.request.retries))
    if self.request.retries < succeed_after:
        raise self.retry()
    return self.request.retries


@task(autoretry_for=(ZeroDivisionError,), retry_backoff=0.1, retry_backoff_max=0.2,
      retry_jitter=False, max_retries=3)
def auto_div(x: float, y: float) -> float:
    return x / y


@task(bind=True)
def request_info(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    r = self.request
    return {
        "id": r.id, "task": r.task, "args": r.args, "kwargs": r.kwargs, "retries": r.retries,
        "eta": r.eta, "expires": r.expires, "hostname": r.hostname,
        "delivery_info": r.delivery_info, "root_id": r.root_id, "parent_id": r.parent_id,
        "group": r.group, "is_eager": r.is_eager, "called_directly": r.called_directly,
        "ignore_result": r.ignore_result,
    }


@task(ignore_result=True)
def ignored(value: Any) -> Any:
    return value


@task(ignore_result=True)
def ignored_fail() -> None:
    raise ValueError("ignored failure")


@task(track_started=True)
def tracked_sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task(name="custom.name")
def named() -> str:
    return "named"


@task
def returns_unencodable() -> Any:
    return object()


@task
def soft_limited(seconds: float) -> str:
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "finished"


@task
def log_something(message: str) -> str:
    logger.info("task says %s", message)
    return message


@task
def errback_one(task_id: str) -> None:
    SideEffect.objects.create(key="errback_one", value=task_id)


@task
def errback_three(request: Any, exc: Any, traceback: Any) -> None:
    SideEffect.objects.create(key="errback_three", value=f"{request.id}|{type(exc).__name__}")


@task
def spawn_child(value: Any) -> str:
    return str(add.delay(value, 1).id)


# --- added for the calling/results/retries/worker suites ------------------------------


@task
def fail_unimportable(module_exists: bool = False, message: str = "ghost") -> None:
    """Raise an exception whose class a reader cannot import: its module does not exist,
    or (``module_exists``) the module has no attribute of that name."""
    module = __name__ if module_exists else "tests.testapp.no_such_module"
    cls = type("GhostError", (Exception,), {"__module__": module})
    raise cls(message)


@task(bind=True, max_retries=1, default_retry_delay=1.5)
def div_slowly(self: Any, x: float, y: float, key: str = "div_slowly") -> float:
    SideEffect.objects.create(key=key, value=str(self.request.retries), pid=os.getpid())
    try:
        return x / y
    except ZeroDivisionError as exc:
        raise self.retry(exc=exc)


@task(bind=True)
def retry_default(self: Any, key: str) -> None:
    """No max_retries and no default_retry_delay: both come from the settings."""
    SideEffect.objects.create(key=key, value=str(self.request.retries))
    raise self.retry()


@task(bind=True, max_retries=5)
def retry_override(self: Any, key: str) -> None:
    """``self.retry(max_retries=1)`` wins over the task's max_retries=5."""
    SideEffect.objects.create(key=key, value=str(self.request.retries))
    raise self.retry(max_retries=1, countdown=0.05)


@task(bind=True, max_retries=3)
def retry_once(self: Any, key: str, how: str) -> int:
    """Retry once, in one second, by ``countdown`` or by ``eta``; then succeed."""
    SideEffect.objects.create(key=key, value=str(self.request.retries))
    if self.request.retries == 0:
        if how == "eta":
            from datetime import timedelta

            from django.utils import timezone

            raise self.retry(eta=timezone.now() + timedelta(seconds=1))
        raise self.retry(countdown=1)
    return int(self.request.retries)


@task(autoretry_for=(ValueError,), retry_backoff=1, retry_backoff_max=1, retry_jitter=False,
      max_retries=3)
def flaky(key: str, fail_times: int) -> int:
    """Fail with ValueError ``fail_times`` times (auto-retried with backoff), then succeed."""
    attempt = SideEffect.objects.filter(key=key).count()
    SideEffect.objects.create(key=key, value=str(attempt))
    if attempt < fail_times:
        raise ValueError(f"attempt {attempt}")
    return attempt


@task(soft_time_limit=0.5)
def soft_limited_task(seconds: float) -> str:
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "finished"


@task(time_limit=0.5)
def hard_limited_task(seconds: float) -> str:
    time.sleep(seconds)
    return "finished"


@task(acks_late=True)
def sleep_acks_late(seconds: float, key: str) -> float:
    SideEffect.objects.create(key=key, value="start", pid=os.getpid())
    time.sleep(seconds)
    return seconds


@task(acks_late=True, reject_on_worker_lost=True)
def kill_self_once(key: str) -> str:
    """Kills its own process on the first run only (re-queued: acks_late with
    reject_on_worker_lost)."""
    first = not SideEffect.objects.filter(key=key).exists()
    SideEffect.objects.create(key=key, value="run", pid=os.getpid())
    if first:
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


@task
def chaos_once(key: str, seconds: float) -> str:
    """Chaos test task without acks_late: must run at most once."""
    SideEffect.objects.create(key=key, value="run", pid=os.getpid())
    time.sleep(seconds)
    return key


@task(acks_late=True, reject_on_worker_lost=True)
def chaos_late(key: str, seconds: float) -> str:
    """Chaos test task with acks_late and reject_on_worker_lost (so a killed pool
    process re-queues it too): must run at least once."""
    SideEffect.objects.create(key=key, value="run", pid=os.getpid())
    time.sleep(seconds)
    return key


@task(queue="special", priority=6)
def routed() -> str:
    """A task whose own options choose its queue and priority."""
    return "routed"


# --- canvas (tests/test_canvas.py) ------------------------------------------------------


@task
def mul(x: Any, y: Any) -> Any:
    return x * y


@task
def tsum(values: list[Any], *extra: Any) -> Any:
    """A chord callback: the sum of the header's results (and of partial args)."""
    return sum(values) + sum(extra)


@task
def chord_record(results: Any, key: str) -> Any:
    """A chord callback that records each run, to count them."""
    import json

    SideEffect.objects.create(key=key, value=json.dumps(results), pid=os.getpid())
    return results


@task(acks_late=True)
def slow_late(x: Any, seconds: float, key: str) -> Any:
    """A chord member that runs again if its worker dies (acks_late)."""
    SideEffect.objects.create(key=key, value=str(x), pid=os.getpid())
    time.sleep(seconds)
    return x


@task(ignore_result=True)
def ignored_double(x: Any) -> Any:
    return x * 2


@task
def spawn_canvas() -> str:
    """Sends a chain from inside a task; returns the chain's id."""
    from djq import chain

    return str(chain(add.s(1, 1), add.s(2), add.s(2)).apply_async().id)


def _count_run(path: str, key: str, seconds: float) -> str:
    # Counted in a file, not the database: a run is seen even while the database is out
    # of reach. One short O_APPEND write per run, so concurrent runs never interleave.
    time.sleep(seconds)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{key}\n".encode())
    finally:
        os.close(fd)
    return key


@task
def count_run(path: str, key: str, seconds: float = 0.0) -> str:
    """Sleeps, then appends ``key`` to the file at ``path``: a run that completed."""
    return _count_run(path, key, seconds)


@task(acks_late=True)
def count_run_late(path: str, key: str, seconds: float = 0.0) -> str:
    """:func:`count_run` with acks_late."""
    return _count_run(path, key, seconds)


# --- task classes and handlers (issue 14) ------------------------------------------------

HOOK_PREFIX = "hook:"


def _note(task_id: Any, what: str) -> None:
    SideEffect.objects.create(key=f"{HOOK_PREFIX}{task_id}", value=what, pid=os.getpid())


class Recording(Task):
    """A base whose handlers write what they were called with, in order."""

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        _note(task_id, f"before_start {list(args)!r} {dict(kwargs)!r}")
        if args and args[0] == "before_start_raises":
            raise RuntimeError("refused in before_start")

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        _note(task_id, f"on_success {retval!r}")
        if retval == "success_handler_raises":
            raise RuntimeError("on_success broke")

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: Any) -> None:
        _note(task_id, f"on_failure {exc!r} {'Traceback' in str(einfo)}")
        if args and args[0] == "failure_handler_raises":
            raise RuntimeError("on_failure broke")

    def on_retry(self, exc: BaseException | None, task_id: str, args: Any, kwargs: Any,
                 einfo: Any) -> None:
        _note(task_id, f"on_retry {exc!r} {'Traceback' in str(einfo)}")

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any,
                     einfo: Any) -> None:
        _note(task_id, f"after_return {status} {retval!r} {einfo is not None}")


def _signal_note(name: str) -> Any:
    def receiver(sender: Any = None, **kwargs: Any) -> None:
        task_obj = sender if isinstance(sender, Task) else kwargs.get("task")
        if isinstance(task_obj, Recording):
            _note(task_obj.request.id, f"signal {name}")
    return receiver


for _name in ("task_prerun", "task_success", "task_failure", "task_retry", "task_postrun"):
    getattr(signals, _name).connect(_signal_note(_name), weak=False,
                                    dispatch_uid=f"tests.hooks.{_name}")


@task(base=Recording, bind=True, max_retries=1, default_retry_delay=0.05)
def hooked(self: Any, mode: str, **kwargs: Any) -> Any:
    _note(self.request.id, "run")
    if mode in ("fail", "failure_handler_raises"):
        raise ValueError(f"hooked {mode}")
    if mode == "retry" and self.request.retries == 0:
        raise self.retry(exc=KeyError("again"))
    return mode


class SharedRetries(Task):
    """An abstract base carrying shared options, as Celery projects use them."""

    autoretry_for = (ZeroDivisionError,)
    max_retries = 2
    default_retry_delay = 0.05
    retry_jitter = False


@task(base=SharedRetries, bind=True)
def shared_retry_div(self: Any, x: float, y: float) -> float:
    _note(self.request.id, f"attempt {self.request.retries}")
    return x / y


class Multiply(Task):
    """A class-based task: Celery's ``class MyTask(Task)`` with ``run()``."""

    def run(self, x: int, y: int) -> int:
        return x * y


multiply = register_task(Multiply())


class Wrapping(Task):
    """A base that overrides ``__call__``, as Celery lets one wrap every run."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return {"wrapped": super().__call__(*args, **kwargs)}


@task(base=Wrapping)
def wrapped_add(x: int, y: int) -> int:
    return x + y


# --- lost processes and redeliveries (issue 14) -------------------------------------------


@task(acks_late=True, reject_on_worker_lost=True)
def poison(key: str) -> None:
    """Kills whatever process runs it, every time: must not loop."""
    SideEffect.objects.create(key=key, value="run", pid=os.getpid())
    os._exit(1)


@task(acks_late=True, reject_on_worker_lost=True, max_deliveries=2)
def poison_twice(key: str) -> None:
    """:func:`poison` with its own delivery limit."""
    SideEffect.objects.create(key=key, value="run", pid=os.getpid())
    os.kill(os.getpid(), signal.SIGKILL)


@task(acks_late=True)
def kill_self_late(key: str) -> None:
    """acks_late without reject_on_worker_lost: a lost process fails it (Celery)."""
    SideEffect.objects.create(key=key, value="run", pid=os.getpid())
    os._exit(1)


# --- limits and terminate in the threads and solo pools (issue 14) ------------------------


def _busy(seconds: float, key: str | None = None) -> float:
    """Works in Python (short sleeps), where an exception raised into its thread lands."""
    if key:
        SideEffect.objects.create(key=key, value="start", pid=os.getpid())
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
    if key:
        SideEffect.objects.create(key=key, value="end", pid=os.getpid())
    return seconds


@task
def busy(seconds: float, key: str | None = None) -> float:
    return _busy(seconds, key)


@task(soft_time_limit=0.5)
def soft_limited_busy(seconds: float) -> str:
    try:
        _busy(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "finished"


@task(time_limit=0.5)
def hard_limited_busy(seconds: float, key: str | None = None) -> str:
    _busy(seconds, key)
    return "finished"


# --- async def tasks (issue 14) -----------------------------------------------------------


@task
async def async_add(x: int, y: int) -> int:
    await asyncio.sleep(0.01)
    return x + y


@task(bind=True, max_retries=2, default_retry_delay=0.05)
async def async_retry(self: Any) -> int:
    await asyncio.sleep(0)
    if self.request.retries < 1:
        raise self.retry(exc=ValueError("again"))
    return int(self.request.retries)


@task
async def async_fail() -> None:
    await asyncio.sleep(0)
    raise ValueError("async boom")


@task
async def async_loop_id() -> int:
    """The id of the event loop the task runs on: one per pool process or thread."""
    return id(asyncio.get_running_loop())
