from __future__ import annotations

from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    name = "bench.app"
    label = "bench_app"

    def ready(self) -> None:
        from djq import signals

        from .tasks import on_worker_ready

        signals.worker_ready.connect(on_worker_ready, dispatch_uid="bench-worker-ready")
