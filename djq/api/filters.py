"""Task list filters (django-filter) and the id-or-name search."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import django_filters  # type: ignore[import-untyped]
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.template import TemplateDoesNotExist
from django_filters.fields import IsoDateTimeField  # type: ignore[import-untyped]
from django_filters.rest_framework import DjangoFilterBackend  # type: ignore[import-untyped]
from rest_framework.filters import SearchFilter
from rest_framework.request import Request

from ..models import Task


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
    """``?state=&name=&queue=&worker=&created_after=&created_before=`` (ISO 8601)."""

    state = django_filters.CharFilter(help_text="Exact state, e.g. SUCCESS or PROGRESS.")
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
        fields = ["state", "name", "queue", "worker", "created_after", "created_before"]


class FilterBackend(DjangoFilterBackend):  # type: ignore[misc]
    """django-filter's backend; in the browsable API its form needs ``django_filters`` in
    INSTALLED_APPS, which djq does not ask for: without it the form is left out."""

    def to_html(self, request: Request, queryset: QuerySet[Any], view: Any) -> str:
        try:
            return str(super().to_html(request, queryset, view))
        except TemplateDoesNotExist:
            return ""


class TaskSearchFilter(SearchFilter):
    """``?search=``: a task id finds that task; any other text matches task names."""

    search_description = "A task id, or part of a task name."

    def filter_queryset(self, request: Request, queryset: QuerySet[Any], view: Any
                        ) -> QuerySet[Any]:
        term = str(request.query_params.get(self.search_param, "")).replace("\x00", "").strip()
        if not term:
            return queryset
        try:
            return queryset.filter(pk=uuid.UUID(term))
        except ValueError:
            return queryset.filter(name__icontains=term)


__all__ = ["TaskFilter", "TaskSearchFilter", "FilterBackend"]
