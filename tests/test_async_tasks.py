"""``async def`` tasks run on an event loop in the worker; ``adelay``,
``aapply_async`` and ``aget`` serve async callers (issue 14)."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from djq import states
from djq.exceptions import TimeoutError as DjqTimeoutError
from djq.result import AsyncResult
from tests.testapp.tasks import add, async_add, async_fail, async_loop_id, async_retry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_async_tasks_run_in_the_worker(start_worker, pool):
    start_worker(pool=pool)
    assert async_add.delay(2, 3).get(timeout=20) == 5
    with pytest.raises(ValueError, match="async boom"):
        async_fail.delay().get(timeout=20)
    retried = async_retry.delay()
    assert retried.get(timeout=20) == 1
    assert retried.retries == 1


def test_each_pool_process_keeps_one_event_loop(start_worker):
    start_worker(pool="solo")
    loops = {async_loop_id.delay().get(timeout=20) for _ in range(3)}
    assert len(loops) == 1


def test_async_task_runs_inline_as_a_coroutine_and_under_apply():
    assert asyncio.run(async_add(1, 2)) == 3
    assert async_add.apply((4, 5)).get() == 9


async def _close_django_connections() -> None:
    # aapply_async writes from a thread of asgiref's: close what it opened there.
    await sync_to_async(connections.close_all)()


def test_adelay_aapply_async_and_aget(worker):
    async def main() -> tuple[list[int], str]:
        try:
            first = await async_add.adelay(1, 1)
            second = await add.aapply_async((2, 2), countdown=0.1)
            values = await asyncio.gather(first.aget(timeout=20), second.aget(timeout=20),
                                          AsyncResult(first.id).aget(timeout=20))
            return values, first.id
        finally:
            await _close_django_connections()

    values, first_id = asyncio.run(main())
    assert values == [2, 4, 2]
    assert AsyncResult(first_id).state == states.SUCCESS


def test_aget_waits_without_blocking_the_loop_and_times_out(worker):
    async def main() -> tuple[int, float]:
        try:
            pending = await add.aapply_async((1, 1), countdown=60)
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.05)
                    ticks += 1

            ticker = asyncio.ensure_future(tick())
            started = time.monotonic()
            with pytest.raises(DjqTimeoutError):
                await pending.aget(timeout=1.0)
            waited = time.monotonic() - started
            ticker.cancel()
            return ticks, waited
        finally:
            await _close_django_connections()

    ticks, waited = asyncio.run(main())
    assert 0.9 <= waited < 5
    assert ticks >= 10  # the loop ran other work while aget waited


def test_aget_propagates_the_tasks_error(worker):
    async def main() -> None:
        try:
            result = await async_fail.adelay()
            with pytest.raises(ValueError, match="async boom"):
                await result.aget(timeout=20)
            assert await result.aget(timeout=5, propagate=False) is not None
        finally:
            await _close_django_connections()

    asyncio.run(main())
