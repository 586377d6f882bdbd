"""The Celery app of the benchmark: Redis as broker and result backend (a Redis database
of the bench's own, ``$BENCH_REDIS_URL``), JSON, Celery's defaults otherwise."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_ready

from bench.common import send_stamp

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
QUEUE = "bench"

app = Celery("bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
)


@app.task(name="bench.noop")
def noop(*args: Any, **kwargs: Any) -> None:
    return None


@app.task(name="bench.stamp")
def stamp(key: Any) -> None:
    send_stamp("start", key)


@worker_ready.connect
def on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    send_stamp("ready", f"celery-{os.getpid()}")
