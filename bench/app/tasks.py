"""Benchmark tasks. ``stamp`` records ``time.time()`` as its first act and sends it to the
bench's collector (UDP, see bench/common.py), exactly as the Celery and pgqueuer tasks do."""

from __future__ import annotations

import os
from typing import Any

from bench.common import send_stamp
from djq import task


@task
def noop(*args: Any, **kwargs: Any) -> None:
    return None


@task
def stamp(key: Any) -> None:
    send_stamp("start", key)


def on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    send_stamp("ready", f"djq-{os.getpid()}")
