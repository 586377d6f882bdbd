"""JSON on the wire, with Celery's round-trips for datetime, Decimal, UUID and bytes.

Anything else JSON cannot carry raises :class:`EncodeError` at call time. A task's
exception travels as Celery's dict (:func:`exception_to_dict`, and back with
:func:`exception_from_dict`), its traceback as :class:`ExceptionInfo` text.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import importlib
import json
import traceback as tb_module
import uuid
from typing import Any

from .exceptions import DecodeError, EncodeError, TaskError

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


def encode_arguments(args: list[Any], kwargs: dict[str, Any]) -> tuple[str, str]:
    """A task's arguments as stored: JSON text, or :class:`EncodeError`."""
    # No kwargs is the common case, and its text is known.
    return dumps(args), dumps(kwargs) if kwargs else "{}"


def loads_options(text: str | None) -> dict[str, Any]:
    """A stored row's options: a JSON object (empty if there are none); raise
    :class:`DecodeError` for anything else, so one bad row fails alone."""
    if not text or text == "{}":
        return {}
    value = loads(text)
    if not isinstance(value, dict):
        raise DecodeError(f"Task options must be a JSON object, got {type(value).__name__}")
    return value


class ExceptionInfo:
    """An exception with its formatted traceback (Celery's ``einfo``)."""

    def __init__(self, exc: BaseException, tb: Any = None) -> None:
        self.exception = exc
        self.type = type(exc)
        self.tb = tb if tb is not None else exc.__traceback__
        # PostgreSQL text cannot hold NUL characters; show them escaped.
        self.traceback = "".join(
            tb_module.format_exception(type(exc), exc, self.tb)).replace("\x00", "\\x00")

    def __str__(self) -> str:
        return self.traceback


def exception_to_dict(exc: BaseException) -> dict[str, Any]:
    """Celery's JSON form of an exception: type, message args and module."""
    args: Any = list(exc.args)
    try:
        dumps(args)
    except EncodeError:
        args = [str(exc)]
    return {"exc_type": type(exc).__name__, "exc_message": args,
            "exc_module": type(exc).__module__}


def exception_from_dict(data: Any) -> BaseException:
    """Rebuild a stored exception: its own type where importable, else a look-alike
    subclass of :class:`TaskError` with the same name."""
    if not isinstance(data, dict) or "exc_type" not in data:
        return TaskError(repr(data))
    name = str(data.get("exc_type"))
    module = str(data.get("exc_module") or "builtins")
    message = data.get("exc_message") or []
    args = message if isinstance(message, list) else [message]
    cls: Any = None
    try:
        cls = getattr(importlib.import_module(module), name, None)
    except Exception:  # noqa: BLE001 - an unimportable module is just "not importable"
        cls = None
    if isinstance(cls, type) and issubclass(cls, BaseException):
        try:
            exc: BaseException = cls(*args)
        except Exception:  # noqa: BLE001 - a constructor with another signature
            exc = cls.__new__(cls)
            exc.args = tuple(args)
        return exc
    lookalike = type(name, (TaskError,), {"__module__": module})
    made: BaseException = lookalike(*args)
    return made
