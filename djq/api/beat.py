"""``periodic-tasks/``: periodic tasks over the REST API (issue 15). CRUD, and ``run/``
("run now"). As for ``POST tasks/``, a periodic task the API creates, retargets or runs
must name a task in ``api_enqueue_allowlist``.

A periodic task carries its schedule inline, exactly one of ``interval``
(``{"every": 15, "period": "minutes"}``), ``crontab`` (Celery's fields as text) and
``clocked`` (``{"clocked_time": ...}``); the schedule rows are shared and found or made
on write.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.validators import UniqueValidator

from .. import permissions as rules
from .. import schedules
from ..beat.models import (
    MAX_EXPIRES, ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask,
    json_problem,
)
from ..beat.scheduler import run_now
from ..conf import conf
from ..exceptions import ScheduleError
from ..task import registry
from .serializers import INT32, checked_queue
from .views import DjqAPIMixin, SafeCursorPagination, document

UPCOMING = 5


def _db() -> str:
    return str(conf.database)


class IntervalSerializer(serializers.Serializer[IntervalSchedule]):
    every = serializers.IntegerField(min_value=1, max_value=INT32)
    period = serializers.ChoiceField(choices=IntervalSchedule.PERIOD_CHOICES)


class CrontabSerializer(serializers.Serializer[CrontabSchedule]):
    minute = serializers.CharField(max_length=240, default="*")
    hour = serializers.CharField(max_length=96, default="*")
    day_of_week = serializers.CharField(max_length=64, default="*")
    day_of_month = serializers.CharField(max_length=124, default="*")
    month_of_year = serializers.CharField(max_length=64, default="*")
    timezone = serializers.CharField(max_length=63, default="", allow_blank=True,
                                     help_text="Blank: DJQ['beat_timezone']")


class ClockedSerializer(serializers.Serializer[ClockedSchedule]):
    clocked_time = serializers.DateTimeField()


SCHEDULE_FIELDS = ("interval", "crontab", "clocked")


def _schedule_value(kind: str, data: dict[str, Any]) -> schedules.BaseSchedule:
    """The schedule described by a payload, or a ValidationError naming the field."""
    try:
        if kind == "interval":
            value: schedules.BaseSchedule = schedules.schedule(
                datetime.timedelta(**{data["period"]: data["every"]}))
        elif kind == "crontab":
            value = schedules.crontab(data["minute"], data["hour"], data["day_of_week"],
                                      data["day_of_month"], data["month_of_year"],
                                      tz=data["timezone"] or None)
        else:
            value = schedules.clocked(data["clocked_time"])
        value.first_fire(timezone.now())  # far-off times must still be representable
        value.upcoming(UPCOMING)
    except (ScheduleError, OverflowError, ValueError) as exc:
        raise serializers.ValidationError({kind: [str(exc)]}) from exc
    return value


class PeriodicTaskSerializer(serializers.Serializer[PeriodicTask]):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=200, validators=[
        UniqueValidator(queryset=PeriodicTask.objects.all(),
                        message="A periodic task with this name exists.")])
    task = serializers.CharField(max_length=255, help_text="A task in api_enqueue_allowlist")
    interval = IntervalSerializer(required=False, allow_null=True)
    crontab = CrontabSerializer(required=False, allow_null=True)
    clocked = ClockedSerializer(required=False, allow_null=True)
    args = serializers.ListField(child=serializers.JSONField(), required=False, default=list)
    kwargs = serializers.DictField(child=serializers.JSONField(), required=False,
                                   default=dict)
    queue = serializers.CharField(max_length=200, required=False, allow_null=True,
                                  default=None, help_text="Null: the task's queue")
    priority = serializers.IntegerField(required=False, allow_null=True, default=None,
                                        min_value=-INT32, max_value=INT32)
    expires = serializers.FloatField(required=False, allow_null=True, default=None,
                                     min_value=0.001, max_value=MAX_EXPIRES,
                                     help_text="Seconds after its fire time a run expires")
    enabled = serializers.BooleanField(required=False, default=True)
    one_off = serializers.BooleanField(required=False, default=False)
    description = serializers.CharField(required=False, allow_blank=True, default="",
                                        max_length=10_000)
    schedule = serializers.SerializerMethodField(help_text="The schedule in words")
    upcoming = serializers.SerializerMethodField(help_text="The next five fire times")
    from_settings = serializers.BooleanField(read_only=True)
    next_run_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_run_at = serializers.DateTimeField(read_only=True, allow_null=True)
    total_run_count = serializers.IntegerField(read_only=True)

    def get_schedule(self, obj: PeriodicTask) -> str:
        return obj.schedule_words()

    @extend_schema_field(serializers.ListField(child=serializers.DateTimeField()))
    def get_upcoming(self, obj: PeriodicTask) -> list[str]:
        if not obj.enabled or obj.next_run_at is None:
            return []
        times = [obj.next_run_at]
        if not obj.one_off and obj.clocked_id is None:
            try:
                times += obj.schedule.upcoming(UPCOMING - 1, max(obj.next_run_at,
                                                                 timezone.now()),
                                               obj.next_run_at)
            except (ScheduleError, OverflowError):
                pass
        return [serializers.DateTimeField().to_representation(t) for t in times]

    def validate_task(self, value: str) -> str:
        if value not in set(conf.api_enqueue_allowlist):
            raise serializers.ValidationError(
                f"Task {value!r} may not be scheduled through the API "
                "(it is not in the api_enqueue_allowlist setting).")
        if value not in registry:
            raise serializers.ValidationError(f"Task {value!r} is not registered.")
        return value

    def validate_queue(self, value: str | None) -> str | None:
        return checked_queue(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [k for k in SCHEDULE_FIELDS if attrs.get(k) is not None]
        if self.instance is None or any(k in attrs for k in SCHEDULE_FIELDS):
            if len(given) != 1:
                raise serializers.ValidationError(
                    "Give exactly one schedule: interval, crontab or clocked.")
            _schedule_value(given[0], attrs[given[0]])
        for key in ("args", "kwargs"):
            if key in attrs and json_problem(attrs[key]):
                raise serializers.ValidationError({key: [json_problem(attrs[key])]})
        return attrs

    def _schedule_rows(self, attrs: dict[str, Any], db: str) -> dict[str, Any]:
        rows: dict[str, Any] = dict.fromkeys(SCHEDULE_FIELDS)
        if attrs.get("interval") is not None:
            rows["interval"], _ = IntervalSchedule.objects.using(db).get_or_create(
                **attrs["interval"])
        elif attrs.get("crontab") is not None:
            cron = CrontabSchedule.objects.using(db).filter(**attrs["crontab"]).first()
            if cron is None:
                cron = CrontabSchedule(**attrs["crontab"])
                cron.save(using=db)
            rows["crontab"] = cron
        else:
            rows["clocked"], _ = ClockedSchedule.objects.using(db).get_or_create(
                **attrs["clocked"])
        return rows

    def _save(self, pt: PeriodicTask, attrs: dict[str, Any]) -> PeriodicTask:
        db = _db()
        with transaction.atomic(using=db):
            for key, value in attrs.items():
                if key not in SCHEDULE_FIELDS:
                    setattr(pt, key, value)
            if any(k in attrs for k in SCHEDULE_FIELDS):
                for key, row in self._schedule_rows(attrs, db).items():
                    setattr(pt, key, row)
            try:
                with transaction.atomic(using=db):
                    pt.save(using=db)
            except IntegrityError as exc:
                raise serializers.ValidationError(
                    {"name": ["A periodic task with this name exists."]}) from exc
        return pt

    def create(self, validated_data: dict[str, Any]) -> PeriodicTask:
        return self._save(PeriodicTask(), validated_data)

    def update(self, instance: PeriodicTask, validated_data: dict[str, Any]) -> PeriodicTask:
        return self._save(instance, validated_data)


class PeriodicTaskPagination(SafeCursorPagination):
    ordering = "id"


@extend_schema(tags=["periodic-tasks"])
class PeriodicTaskViewSet(DjqAPIMixin, viewsets.ModelViewSet[PeriodicTask]):
    """Periodic tasks: their schedule, in words and as the next five fire times, and the
    record of their runs."""

    serializer_class = PeriodicTaskSerializer
    pagination_class = PeriodicTaskPagination
    lookup_value_regex = "[0-9]{1,18}"
    djq_actions = {"create": rules.ADD_SCHEDULE, "update": rules.CHANGE_SCHEDULE,
                   "partial_update": rules.CHANGE_SCHEDULE,
                   "destroy": rules.DELETE_SCHEDULE, "run": rules.RUN_SCHEDULE}

    def djq_action(self, request: Request) -> str | None:
        return self.djq_actions.get(str(getattr(self, "action", None)), rules.VIEW_SCHEDULES)

    def get_queryset(self) -> QuerySet[PeriodicTask]:
        return PeriodicTask.objects.using(_db()).select_related("interval", "crontab",
                                                                "clocked")

    @document(
        summary="Send a periodic task now, whatever its schedule (which stays as it is)",
        request=None,
        responses={202: OpenApiResponse(description="Sent: {\"id\": the task id}"),
                   400: OpenApiResponse(description="Its task is not in "
                                                    "api_enqueue_allowlist"),
                   404: OpenApiResponse(description="No such periodic task")},
    )
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        pt = self.get_object()
        if pt.task not in set(conf.api_enqueue_allowlist):
            raise serializers.ValidationError(
                {"task": [f"Task {pt.task!r} may not be enqueued through the API "
                          "(it is not in the api_enqueue_allowlist setting)."]})
        result = run_now(pt.pk, using=_db())
        return Response({"id": result.id}, status=status.HTTP_202_ACCEPTED)
