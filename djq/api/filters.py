"""Task list filters (django-filter) and the id-or-name search."""

from __future__ import annotations

import datetime
import uuid
from typing import Any, cast

import django_filters  # type: ignore[import-untyped]
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.template import TemplateDoesNotExist
from django_filters.fields import IsoDateTimeField  # type: ignore[import-untyped]
from django_filters.rest_framework import DjangoFilterBackend  # type: ignore[import-untyped]
from rest_framework.filters import SearchFilter
from rest_framework.request import Request

from ..models import Task, TaskQuerySet


class UTCIsoDateTimeField(IsoDateTimeField):  # type: ignore[misc]
    """An ISO 8601 date-time, converted to UTC: PostgreSQL refuses some offsets Python
    accepts (beyond ±15:59), and a time near year 1 or 9999 can leave the range."""

    def to_python(self, value: Any) -> datetime.datetime | None:
        parsed: datetime.datetime | None = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(datetime.timezone.utc)
        except (OverflowError, ValueError) as exc:
            raise ValidationError("Date-time out of range.", code="invalid") from exc


class UTCIsoDateTimeFilter(django_filters.IsoDateTimeFilter):  # type: ignore[misc]
    field_class = UTCIsoDateTimeField


class TaskFilter(django_filters.FilterSet):  # type: ignore[misc]
    """``?state=&running=&name=&queue=&worker=&created_after=&created_before=``."""

    state = django_filters.CharFilter(help_text="Exact state, e.g. SUCCESS or PROGRESS.")
    running = django_filters.BooleanFilter(
        method="filter_running",
        help_text="true: claimed by a worker or running, whatever the state (custom states "
                  "such as PROGRESS included); false: every other task.")
    name = django_filters.CharFilter(help_text="Exact registered task name.")
    queue = django_filters.CharFilter(help_text="Exact queue name.")
    worker = django_filters.CharFilter(help_text="Hostname of the worker that ran it.")
    created_after = UTCIsoDateTimeFilter(
        field_name="date_created", lookup_expr="gte",
        help_text="Created at or after this time (ISO 8601).")
    created_before = UTCIsoDateTimeFilter(
        field_name="date_created", lookup_expr="lt",
        help_text="Created before this time (ISO 8601).")

    class Meta:
        model = Task
        fields = ["state", "running", "name", "queue", "worker", "created_after",
                  "created_before"]

    def filter_running(self, queryset: QuerySet[Any], name: str, value: bool | None
                       ) -> QuerySet[Any]:
        if value is None:
            return queryset
        tasks = cast(TaskQuerySet, queryset)
        return tasks.in_flight() if value else tasks.not_in_flight()


class FilterBackend(DjangoFilterBackend):  # type: ignore[misc]
    """django-filter's backend; in the browsable API its form needs ``django_filters`` in
    INSTALLED_APPS, which djq does not ask for: without it the form is left out."""

    def to_html(self, request: Request, queryset: QuerySet[Any], view: Any) -> str:
        try:
            return str(super().to_html(request, queryset, view))
        except TemplateDoesNotExist:
            return ""


class TaskSearchFilter(SearchFilter):
    """``?search=``: a task id finds that task; any other text matches task names and
    arguments, as the admin's search does."""

    search_description = "A task id, or text in the task name or its arguments."

    def filter_queryset(self, request: Request, queryset: QuerySet[Any], view: Any
                        ) -> QuerySet[Any]:
        term = str(request.query_params.get(self.search_param, "")).replace("\x00", "").strip()
        if not term:
            return queryset
        try:
            return queryset.filter(pk=uuid.UUID(term))
        except ValueError:
            return queryset.filter(Q(name__icontains=term) | Q(args__icontains=term))


__all__ = ["TaskFilter", "TaskSearchFilter", "FilterBackend"]
