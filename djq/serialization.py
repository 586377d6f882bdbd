"""JSON on the wire, with Celery's round-trips for datetime, Decimal, UUID and bytes.

Anything else JSON cannot carry raises :class:`EncodeError` at call time.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import uuid
from typing import Any

from .exceptions import DecodeError, EncodeError

_TYPE = "__type__"
_VALUE = "__value__"


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime.datetime):
        return {_TYPE: "datetime", _VALUE: obj.isoformat()}
    if isinstance(obj, datetime.date):
        return {_TYPE: "date", _VALUE: obj.isoformat()}
    if isinstance(obj, datetime.time):
        return {_TYPE: "time", _VALUE: obj.isoformat()}
    if isinstance(obj, decimal.Decimal):
        return {_TYPE: "decimal", _VALUE: str(obj)}
    if isinstance(obj, uuid.UUID):
        return {_TYPE: "uuid", _VALUE: str(obj)}
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {_TYPE: "bytes", _VALUE: base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, (set, frozenset)):
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
    # Objects that know how to become JSON (e.g. Signature dicts are dicts already).
    for_json = getattr(obj, "__json__", None)
    if callable(for_json):
        return for_json()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_DECODERS: dict[str, Any] = {
    "datetime": datetime.datetime.fromisoformat,
    "date": datetime.date.fromisoformat,
    "time": datetime.time.fromisoformat,
    "decimal": decimal.Decimal,
    "uuid": uuid.UUID,
    "bytes": lambda v: base64.b64decode(v.encode("ascii")),
}


def _object_hook(obj: dict[str, Any]) -> Any:
    kind = obj.get(_TYPE)
    if kind is not None and len(obj) == 2 and _VALUE in obj:
        decoder = _DECODERS.get(kind)
        if decoder is not None:
            return decoder(obj[_VALUE])
    return obj


_encoder = json.JSONEncoder(default=_default, ensure_ascii=False, separators=(",", ":"),
                            allow_nan=False)
_decoder = json.JSONDecoder(object_hook=_object_hook)


def dumps(value: Any) -> str:
    """Encode ``value`` as JSON text; raise :class:`EncodeError` if it cannot be."""
    try:
        return _encoder.encode(value)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise EncodeError(f"Cannot encode as JSON: {exc}") from exc


def loads(text: str | bytes | None) -> Any:
    """Decode JSON text written by :func:`dumps`; raise :class:`DecodeError` if it is not."""
    if text is None:
        return None
    try:
        if isinstance(text, (bytes, bytearray)):
            text = text.decode("utf-8")
        return _decoder.decode(text)
    except (ValueError, TypeError, RecursionError) as exc:
        raise DecodeError(f"Cannot decode JSON payload: {exc}") from exc


def loads_options(text: str | None) -> dict[str, Any]:
    """A stored row's options: a JSON object (empty if there are none); raise
    :class:`DecodeError` for anything else, so one bad row fails alone."""
    if not text or text == "{}":
        return {}
    value = loads(text)
    if not isinstance(value, dict):
        raise DecodeError(f"Task options must be a JSON object, got {type(value).__name__}")
    return value
