"""Logging filters of the demo project."""

from __future__ import annotations

import logging

#: Paths the monitor polls every second or so (its data and its task pages' data).
POLLED = ("/djq/data/",)


class QuietPolling(logging.Filter):
    """Leaves out runserver's lines for the monitor's successful polling requests (one to
    three a second per open page), so the demo's log shows what matters. Errors pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        request_line = str(args[0]) if args else ""
        try:
            status = int(str(args[1])) if len(args) > 1 else 0
        except ValueError:
            status = 0
        method, _, rest = request_line.partition(" ")
        polled = method == "GET" and rest.startswith(POLLED)
        return not (polled and status < 400)
