"""Showing a stored task to people: decoded arguments and results as plain JSON values,
the progress a task reports in its meta, and its runtime. Shared by the admin, the REST
API and the monitor."""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
import uuid
from typing import Any

from . import serialization, states
from .exceptions import DecodeError


def jsonable(value: Any) -> Any:
    """``value`` (as :func:`djq.serialization.loads` returns it) with the types JSON
    cannot carry turned into strings: ISO dates, decimals, UUIDs, base64 bytes."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def decoded(text: str | None) -> Any:
    """A stored JSON column as plain JSON values; text that does not decode is returned
    as it is (a reader never fails on one bad row)."""
    if text is None:
        return None
    try:
        return jsonable(serialization.loads(text))
    except DecodeError:
        return text


def pretty(text: str | None) -> str:
    """A stored JSON column, indented for reading."""
    value = decoded(text)
    if isinstance(value, str) and value == text:
        return text
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def progress(state: str, meta: Any) -> float | None:
    """Percent done (0..100) that an unfinished task reported with ``update_state``:
    ``meta["progress"]``, or ``meta["current"] / meta["total"]``; None if it reports none."""
    if state in states.READY_STATES or not isinstance(meta, dict):
        return None
    value = _number(meta.get("progress"))
    if value is not None:
        return max(0.0, min(100.0, value))
    current, total = _number(meta.get("current")), _number(meta.get("total"))
    if current is not None and total is not None and total > 0:
        return max(0.0, min(100.0, 100.0 * current / total))
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def runtime(date_started: datetime.datetime | None,
            date_done: datetime.datetime | None) -> float | None:
    """Seconds between start and end, when both are known."""
    if date_started is None or date_done is None:
        return None
    return max(0.0, (date_done - date_started).total_seconds())


def duration(seconds: float | None) -> str:
    """Seconds for people, as the monitor's script writes them (``djq/static/djq/time.js``):
    "240 ms", "2.50 s", "14.2 s", "3 min 5 s", "2 h 10 min", "3 d 4 h"."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {(s % 3600) // 60} min"
    return f"{s // 86400} d {(s % 86400) // 3600} h"


__all__ = ["jsonable", "decoded", "pretty", "progress", "runtime", "duration"]
