"""Task and worker rows written straight to the tables, for the admin, API and monitor
tests (no worker needed to see a finished, failed or running task)."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

from django.utils import timezone

from djq import broker, states
from djq.models import Task, Worker

_STATUS = {
    states.PENDING: broker.WAITING, states.RECEIVED: broker.CLAIMED,
    states.STARTED: broker.STARTED, "PROGRESS": broker.STARTED,
    states.SUCCESS: broker.DONE, states.FAILURE: broker.DONE, states.REVOKED: broker.DONE,
    states.RETRY: broker.WAITING,
}


def make_task(state: str = states.SUCCESS, name: str = "tests.testapp.tasks.add",
              args: Any = (2, 3), kwargs: Any = None, result: Any = None,
              created: datetime.datetime | None = None, **fields: Any) -> Task:
    """A task row in ``state``, with the status, dates and result that state implies."""
    now = timezone.now()
    created = created or now
    status = fields.pop("status", _STATUS.get(state, broker.STARTED))
    values: dict[str, Any] = {
        "id": uuid.uuid4(), "name": name, "state": state, "status": status,
        "queue": "default", "args": json.dumps(list(args)), "kwargs": json.dumps(kwargs or {}),
        "run_at": created, "date_created": created,
    }
    if status in (broker.CLAIMED, broker.STARTED, broker.DONE):
        values["worker"] = "w1@test"
    if status in (broker.STARTED, broker.DONE):
        values["date_started"] = created + datetime.timedelta(milliseconds=10)
    if status == broker.DONE:
        values["date_done"] = created + datetime.timedelta(milliseconds=250)
    if result is not None:
        values["result"] = json.dumps(result)
    elif state == states.SUCCESS:
        values["result"] = "5"
    elif state == states.FAILURE:
        values["result"] = json.dumps({"exc_type": "ValueError", "exc_message": ["boom"],
                                       "exc_module": "builtins"})
        values["traceback"] = 'Traceback (most recent call last):\nValueError: boom\n'
    values.update(fields)
    return Task.objects.create(**values)


def make_worker(hostname: str = "w1@test", alive: bool = True, **fields: Any) -> Worker:
    now = timezone.now()
    values: dict[str, Any] = {
        "hostname": hostname, "pid": 4242, "pool": "prefork", "concurrency": 2,
        "queues": "default", "started_at": now - datetime.timedelta(minutes=5),
        "last_heartbeat": now if alive else now - datetime.timedelta(minutes=3),
        "stopped_at": None if alive else now - datetime.timedelta(minutes=2),
        "processed": 10, "failed": 1, "active": 1, "loadavg": "0.50,0.40,0.30",
    }
    values.update(fields)
    return Worker.objects.create(**values)


#: Every permission djq's own rules ask for (djq.permissions.RULES).
ALL_DJQ_PERMISSIONS = ("view_task", "add_task", "change_task", "revoke_task", "view_worker",
                       "view_periodictask", "add_periodictask", "change_periodictask",
                       "delete_periodictask")


def grant(user: Any, *codenames: str) -> Any:
    """Give ``user`` djq's permissions by codename (``"view_task"``); returns the user
    reloaded, since Django caches permissions on the instance."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="djq", codename__in=codenames))
    assert user.user_permissions.filter(codename__in=codenames).count() == len(codenames)
    return get_user_model().objects.get(pk=user.pk)
