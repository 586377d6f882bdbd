"""JSON on the wire: Celery's type round-trips through a real worker and back, and
EncodeError for anything else."""

from __future__ import annotations

import datetime
import decimal
import uuid

import pytest

from djq import states
from djq.exceptions import EncodeError
from djq.models import Task as TaskRow
from tests.testapp.tasks import echo, identity, returns_unencodable

pytestmark = pytest.mark.django_db(transaction=True)

TZ_PLUS_2 = datetime.timezone(datetime.timedelta(hours=2))

VALUES = {
    "aware_datetime": datetime.datetime(2024, 2, 29, 23, 59, 58, 123456,
                                        tzinfo=datetime.timezone.utc),
    "offset_datetime": datetime.datetime(2024, 1, 1, 12, 0, tzinfo=TZ_PLUS_2),
    "naive_datetime": datetime.datetime(2001, 9, 9, 1, 46, 40),
    "date": datetime.date(1999, 12, 31),
    "time": datetime.time(13, 37, 0, 42),
    "decimal": decimal.Decimal("3.14159265358979323846264338327950288"),
    "decimal_trailing_zero": decimal.Decimal("1.10"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "bytes": b"\x00\xffbinary\n",
    "empty_bytes": b"",
}


def assert_same(got: object, expected: object) -> None:
    assert type(got) is type(expected), (got, expected)
    assert got == expected
    if isinstance(expected, datetime.datetime):
        assert got.utcoffset() == expected.utcoffset()  # type: ignore[attr-defined]
    if isinstance(expected, decimal.Decimal):
        assert str(got) == str(expected)


def test_special_types_round_trip_through_a_worker(worker):
    result = echo.delay(*VALUES.values(), **VALUES)
    got = result.get(timeout=15)
    assert len(got["args"]) == len(VALUES)
    for value, expected in zip(got["args"], VALUES.values()):
        assert_same(value, expected)
    assert set(got["kwargs"]) == set(VALUES)
    for key, expected in VALUES.items():
        assert_same(got["kwargs"][key], expected)


def test_special_types_nested_in_containers_round_trip(worker):
    nested = {"when": [VALUES["date"], {"at": VALUES["time"]}],
              "money": {"total": VALUES["decimal_trailing_zero"]},
              "ids": [VALUES["uuid"], str(VALUES["uuid"])],
              "blob": [VALUES["bytes"]]}
    got = identity.delay(nested).get(timeout=15)
    assert got == nested
    assert_same(got["when"][0], VALUES["date"])
    assert_same(got["when"][1]["at"], VALUES["time"])
    assert_same(got["money"]["total"], VALUES["decimal_trailing_zero"])
    assert_same(got["ids"][0], VALUES["uuid"])
    assert_same(got["ids"][1], str(VALUES["uuid"]))
    assert_same(got["blob"][0], VALUES["bytes"])


def test_stored_args_decode_to_their_types():
    result = echo.delay(VALUES["decimal"], when=VALUES["aware_datetime"])
    assert_same(result.args[0], VALUES["decimal"])
    assert_same(result.kwargs["when"], VALUES["aware_datetime"])


def test_json_native_values_arrive_as_json_gives_them(worker):
    got = identity.delay({"t": (1, 2), "n": None, "b": True, "f": 1.5, "s": "é",
                          "big": 2 ** 70}).get(timeout=15)
    assert got == {"t": [1, 2], "n": None, "b": True, "f": 1.5, "s": "é", "big": 2 ** 70}


def test_bytearray_arrives_as_bytes(worker):
    got = identity.delay(bytearray(b"abc")).get(timeout=15)
    assert_same(got, b"abc")


@pytest.mark.parametrize("value", [{1, 2}, frozenset({"a"}), object(), [object()],
                                   {"k": {1}}, Exception("x")])
def test_anything_else_raises_encode_error_at_call_time(value):
    with pytest.raises(EncodeError):
        identity.delay(value)
    with pytest.raises(EncodeError):
        echo.delay(x=value)
    assert TaskRow.objects.count() == 0


def test_dict_with_non_string_keys_of_unencodable_type_raises_encode_error():
    with pytest.raises(EncodeError):
        identity.delay({(1, 2): "tuple key"})
    assert TaskRow.objects.count() == 0


def test_unencodable_return_value_fails_the_task(worker):
    result = returns_unencodable.delay()
    with pytest.raises(EncodeError):
        result.get(timeout=15)
    assert result.state == states.FAILURE
    assert "EncodeError" in result.traceback
