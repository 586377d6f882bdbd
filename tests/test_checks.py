"""``manage.py check`` on DJQ: each key's type and range, dotted paths that cannot be
imported, unknown keys (a warning); and ``conf``'s typed, lazy reads."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.core.checks import WARNING
from rest_framework.permissions import IsAdminUser, IsAuthenticated

from djq.checks import check_settings, check_task_settings
from djq.conf import DEFAULTS, Settings, conf
from tests.cli import run_manage

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("djq, message", [
    ({"worker_lease": "20"}, "DJQ['worker_lease'] must be float, not str '20'"),
    ({"task_acks_late": "yes"}, "DJQ['task_acks_late'] must be bool, not str 'yes'"),
    ({"task_default_priority": True}, "DJQ['task_default_priority'] must be int"),
    ({"task_default_queue": None}, "DJQ['task_default_queue'] must be str, not NoneType"),
    ({"api_enqueue_allowlist": "tests.testapp.tasks.add"},
     "DJQ['api_enqueue_allowlist'] must be Sequence[str], not str"),
    ({"result_expires": datetime.timedelta(days=1)}, "DJQ['result_expires'] must be float"),
    ({"worker_concurrency": 0}, "DJQ['worker_concurrency'] must be at least 1, not 0"),
    ({"task_time_limit": 0}, "DJQ['task_time_limit'] must be more than 0, not 0"),
    ({"result_expires": -1}, "DJQ['result_expires'] must be at least 0, not -1"),
    ({"worker_prune_batch": 0}, "DJQ['worker_prune_batch'] must be at least 1, not 0"),
    ({"worker_lease": 2.0, "worker_heartbeat_interval": 2.0},
     "DJQ['worker_lease'] (2.0) must be longer than DJQ['worker_heartbeat_interval'] (2.0)"),
])
def test_a_bad_value_is_an_error_naming_the_key(settings: Any, djq: dict[str, Any],
                                                message: str) -> None:
    settings.DJQ = djq
    problems = check_task_settings()
    assert [p.id for p in problems] == ["djq.E023"]
    assert problems[0].msg.startswith(message), problems[0].msg


def test_a_dotted_path_that_cannot_be_imported_is_an_error(settings: Any) -> None:
    settings.DJQ = {"api_permission_classes": ["no.such.Permission"]}
    problems = check_task_settings()
    assert [(p.id, p.msg) for p in problems] == [
        ("djq.E022", "api_permission_classes: cannot import 'no.such.Permission'")]


def test_good_values_pass(settings: Any) -> None:
    settings.DJQ = {
        "worker_lease": 30,  # an int where seconds are a float
        "worker_heartbeat_interval": 1.5,
        "task_time_limit": None, "task_soft_time_limit": 2.5, "worker_concurrency": None,
        "task_max_retries": None, "result_expires": 0, "beat_timezone": datetime.UTC,
        "api_permission_classes": ["rest_framework.permissions.IsAuthenticated",
                                   IsAuthenticated],
        "api_enqueue_allowlist": ("tests.testapp.tasks.add",),
        "metrics_token": "s3cret",
    }
    assert check_task_settings() == []
    assert check_settings() == []


def test_unknown_keys_stay_a_warning(settings: Any) -> None:
    settings.DJQ = {"worker_leese": 20}
    assert [(p.id, p.level) for p in check_settings()] == [("djq.W001", WARNING)]
    assert check_task_settings() == []


def test_conf_reads_lazily_and_imports_dotted_paths(settings: Any) -> None:
    settings.DJQ = {"api_permission_classes": ["rest_framework.permissions.IsAuthenticated"],
                    "task_routes": {"tests.*": "other"}}
    assert conf.api_permission_classes == [IsAuthenticated]
    assert conf.raw("api_permission_classes") == ["rest_framework.permissions.IsAuthenticated"]
    assert conf.task_routes == {"tests.*": "other"}  # a map's queue names stay names
    settings.DJQ = {}
    assert conf.api_permission_classes == [IsAdminUser]  # the default, imported
    with pytest.raises(AttributeError, match="Unknown djq setting"):
        conf.raw("worker_leese")


def test_every_setting_has_a_declared_type() -> None:
    assert set(Settings.__annotations__) == set(DEFAULTS)


def test_manage_py_check_refuses_a_bad_value() -> None:
    proc = run_manage("check", overrides={"worker_prefetch_multiplier": "4"})
    assert proc.returncode == 1
    assert ("djq.E023) DJQ['worker_prefetch_multiplier'] must be int, not str '4'"
            in proc.stderr)
