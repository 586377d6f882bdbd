"""OpenTelemetry in a test worker: with ``DJQ_TEST_SPANS`` set to a file, every span the
worker's processes end is appended to it as one JSON line (the SDK's own encoding), so
the test process can read what the worker traced."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


def install_from_env() -> None:
    path = os.environ.get("DJQ_TEST_SPANS")
    if not path:
        return
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class JsonLines(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> Any:
            with open(path, "a", encoding="utf-8") as out:  # one write per span: no tearing
                for span in spans:
                    out.write(span.to_json(indent=None) + "\n")
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLines()))
    trace.set_tracer_provider(provider)
