"""The examples every Celery user knows, as djq tasks."""

from __future__ import annotations

import time

from djq import task
from djq.utils.log import get_task_logger

logger = get_task_logger(__name__)


@task
def add(x: int, y: int) -> int:
    return x + y


@task(bind=True, max_retries=3, default_retry_delay=2)
def div(self, x: float, y: float) -> float:  # type: ignore[no-untyped-def]
    """Divide, retrying on ZeroDivisionError (and giving up after three tries)."""
    try:
        return x / y
    except ZeroDivisionError as exc:
        logger.warning("Division by zero, retry %d", self.request.retries + 1)
        raise self.retry(exc=exc)


@task(bind=True)
def long_task(self, steps: int = 10, delay: float = 0.5) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Work in steps, reporting PROGRESS with a percentage after each one."""
    for i in range(steps):
        time.sleep(delay)
        self.update_state(state="PROGRESS",
                          meta={"current": i + 1, "total": steps,
                                "progress": round(100 * (i + 1) / steps)})
    return {"current": steps, "total": steps, "progress": 100}


@task
def fail(message: str = "This task always fails") -> None:
    raise RuntimeError(message)
