"""What the API shows and accepts: tasks, the enqueue and revoke payloads, workers,
queues and stats."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import display, serialization
from ..conf import conf
from ..exceptions import EncodeError, NotRegistered
from ..models import Task, Worker
from ..task import registry

INT32 = 2**31 - 1
#: The longest countdown accepted: ten years, in seconds.
MAX_COUNTDOWN = 10 * 365 * 24 * 3600


class TaskSerializer(serializers.ModelSerializer[Task]):
    """A task as stored, with its arguments and result decoded."""

    status = serializers.CharField(source="get_status_display", read_only=True,
                                   help_text="Queue phase: waiting, claimed, started or done.")
    args = serializers.SerializerMethodField()
    kwargs = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField(
        help_text="Return value; the exception (exc_type, exc_message) of a failed, retried "
                  "or revoked task; or the meta of a custom state.")
    progress = serializers.SerializerMethodField(
        help_text="Percent done reported by an unfinished task (meta progress, or "
                  "current/total); null otherwise.")
    runtime = serializers.SerializerMethodField(help_text="Seconds from start to end.")

    class Meta:
        model = Task
        fields = ["id", "name", "state", "status", "queue", "priority", "args", "kwargs",
                  "result", "progress", "traceback", "retries", "worker", "eta", "expires",
                  "date_created", "date_started", "date_done", "runtime", "parent_id",
                  "root_id", "group_id"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.JSONField()))
    def get_args(self, obj: Task) -> Any:
        return display.decoded(obj.args)

    @extend_schema_field(serializers.DictField(child=serializers.JSONField()))
    def get_kwargs(self, obj: Task) -> Any:
        return display.decoded(obj.kwargs)

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_result(self, obj: Task) -> Any:
        return display.decoded(obj.result)

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_progress(self, obj: Task) -> float | None:
        return display.progress(obj.state, display.decoded(obj.result))

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_runtime(self, obj: Task) -> float | None:
        return display.runtime(obj.date_started, obj.date_done)


def checked_queue(value: str | None) -> str | None:
    """A queue name given through the API: not blank."""
    if value is not None and not value.strip():
        raise serializers.ValidationError("A queue name cannot be blank.")
    return value


class EnqueueSerializer(serializers.Serializer[dict[str, Any]]):
    """``POST tasks/``: send a task whose name is in ``api_enqueue_allowlist``."""

    name = serializers.CharField(max_length=255)
    args = serializers.ListField(child=serializers.JSONField(), required=False, default=list)
    kwargs = serializers.DictField(child=serializers.JSONField(), required=False, default=dict)
    countdown = serializers.FloatField(required=False, allow_null=True, min_value=0,
                                       max_value=MAX_COUNTDOWN,
                                       help_text="Seconds from now before it may run.")
    eta = serializers.DateTimeField(required=False, allow_null=True,
                                    help_text="Not run before this time (ISO 8601).")
    queue = serializers.CharField(required=False, allow_null=True, max_length=200,
                                  help_text="Defaults to the task's queue.")
    priority = serializers.IntegerField(required=False, allow_null=True, min_value=-INT32,
                                        max_value=INT32, help_text="Higher runs first.")

    def validate_name(self, value: str) -> str:
        if value not in set(conf.api_enqueue_allowlist):
            raise serializers.ValidationError(
                f"Task {value!r} may not be enqueued through the API "
                "(it is not in the api_enqueue_allowlist setting).")
        try:
            registry[value]
        except NotRegistered as exc:
            raise serializers.ValidationError(f"Task {value!r} is not registered.") from exc
        return value

    def validate_queue(self, value: str | None) -> str | None:
        return checked_queue(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("countdown") is not None and attrs.get("eta") is not None:
            raise serializers.ValidationError({"eta": ["Give countdown or eta, not both."]})
        for field in ("args", "kwargs"):
            try:
                # PostgreSQL text takes valid UTF-8 only (no lone surrogates).
                serialization.dumps(attrs[field]).encode("utf-8")
            except (EncodeError, UnicodeEncodeError) as exc:
                raise serializers.ValidationError({field: [f"Cannot be stored: {exc}"]}) from exc
        task = registry[attrs["name"]]
        try:
            task.check_arguments(attrs["args"], attrs["kwargs"])
        except TypeError as exc:
            raise serializers.ValidationError({"args": [str(exc)]}) from exc
        return attrs


class RevokeSerializer(serializers.Serializer[dict[str, Any]]):
    """``POST tasks/{id}/revoke/``."""

    terminate = serializers.BooleanField(
        required=False, default=False,
        help_text="Also kill the task if it is running (its process gets the signal).")
    signal = serializers.ChoiceField(
        choices=["SIGTERM", "SIGKILL", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2"],
        required=False, default="SIGTERM", help_text="Signal sent when terminating.")


class RevokeResultSerializer(serializers.Serializer[dict[str, Any]]):
    outcome = serializers.ChoiceField(
        choices=["revoked", "terminating", "running", "finished"],
        help_text="revoked: it will never run; terminating: its worker was told to kill it; "
                  "running: started and left to finish (no terminate); finished: too late.")
    task = TaskSerializer()


class WorkerSerializer(serializers.ModelSerializer[Worker]):
    alive = serializers.SerializerMethodField()
    queues = serializers.SerializerMethodField()
    loadavg = serializers.SerializerMethodField()

    class Meta:
        model = Worker
        fields = ["id", "hostname", "pid", "alive", "pool", "concurrency", "queues",
                  "started_at", "last_heartbeat", "stopped_at", "processed", "failed",
                  "active", "loadavg", "sw_ver"]
        read_only_fields = fields

    def get_alive(self, obj: Worker) -> bool:
        return obj.is_alive()

    def get_queues(self, obj: Worker) -> list[str]:
        return [q.strip() for q in obj.queues.split(",") if q.strip()]

    def get_loadavg(self, obj: Worker) -> list[float]:
        try:
            return [float(x) for x in obj.loadavg.split(",") if x.strip()]
        except ValueError:
            return []


class QueueSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    waiting = serializers.IntegerField(help_text="Tasks ready to run now.")
    scheduled = serializers.IntegerField(help_text="Tasks waiting for an eta or a retry delay.")
    active = serializers.IntegerField(help_text="Tasks claimed or running.")
    oldest_waiting_age = serializers.FloatField(
        allow_null=True, help_text="Seconds the oldest ready task has waited.")
    enqueued_per_minute = serializers.FloatField(help_text="Over the last five minutes.")
    processed_per_minute = serializers.FloatField(help_text="Over the last five minutes.")
    failed_per_minute = serializers.FloatField(help_text="Over the last five minutes.")
    workers = serializers.IntegerField(help_text="Live workers consuming this queue.")


class _TaskCounts(serializers.Serializer[dict[str, Any]]):
    waiting = serializers.IntegerField()
    scheduled = serializers.IntegerField()
    claimed = serializers.IntegerField()
    started = serializers.IntegerField()
    total_estimate = serializers.IntegerField(
        allow_null=True, help_text="Planner estimate of all stored rows (null when scoped).")


class _Rates(serializers.Serializer[dict[str, Any]]):
    enqueued_per_minute = serializers.FloatField()
    processed_per_minute = serializers.FloatField()
    failed_per_minute = serializers.FloatField()


class _WorkerCounts(serializers.Serializer[dict[str, Any]]):
    alive = serializers.IntegerField()
    processes = serializers.IntegerField()
    active = serializers.IntegerField()


class StatsSerializer(serializers.Serializer[dict[str, Any]]):
    tasks = _TaskCounts()
    unfinished_by_state = serializers.DictField(child=serializers.IntegerField())
    finished_last_hour = serializers.DictField(child=serializers.IntegerField())
    rates = _Rates()
    workers = _WorkerCounts()


__all__ = ["TaskSerializer", "EnqueueSerializer", "RevokeSerializer", "WorkerSerializer",
           "QueueSerializer", "StatsSerializer"]
