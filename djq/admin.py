"""The Django admin for djq: a task browser that stays fast with millions of rows, and
the workers.

The change list never counts the whole table: an unfiltered list shows the planner's
estimate (``pg_class.reltuples``), a filtered one counts at most
:attr:`EstimatedCountPaginator.cap` rows and estimates beyond that. Its rows come newest
first from the ``djq_task_created`` index, without the large JSON columns. The filters'
choices come from the task registry, the workers table and the unfinished and newest
tasks (:func:`djq.cluster.seen_values`), never from a ``DISTINCT`` over the tasks, and are
the monitor's. Actions go through :mod:`djq.control`, as the API and the CLI do; who may
take them is :mod:`djq.permissions`, as in the monitor and the API.
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Paginator
from django.db.models import F, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from . import cluster, control, display, permissions, states
from .conf import conf
from .exceptions import TaskNotFinished, TaskNotFound
from .models import Status, Task, TaskQuerySet, Worker, WorkerQuerySet

if TYPE_CHECKING:
    _TaskAdminBase = admin.ModelAdmin[Task]
    _WorkerAdminBase = admin.ModelAdmin[Worker]
else:  # ModelAdmin is generic for the type checker only
    _TaskAdminBase = _WorkerAdminBase = admin.ModelAdmin

#: Background colour of each state's badge (custom states such as PROGRESS use OTHER).
STATE_COLOURS = {
    states.PENDING: "#6c757d",
    states.RECEIVED: "#5a6f85",
    states.STARTED: "#0d6efd",
    states.RETRY: "#d97706",
    states.SUCCESS: "#198754",
    states.FAILURE: "#dc3545",
    states.REVOKED: "#495057",
}
OTHER_COLOUR = "#6f42c1"

# Columns the change list does not show; left out of its query (they can be large).
_HEAVY_COLUMNS = ("args", "kwargs", "options", "result", "traceback")


def state_badge(state: str) -> SafeString:
    colour = STATE_COLOURS.get(state, OTHER_COLOUR)
    return format_html(
        '<span class="djq-state" style="background:{};color:#fff;padding:1px 6px;'
        'border-radius:3px;font-size:11px;font-weight:600;white-space:nowrap">{}</span>',
        colour, state)



def _time_column(attr: str, description: str) -> Any:
    """A read-only column or field showing the datetime ``attr`` by the one time policy
    (:func:`_when`), absolute and relative."""

    @admin.display(description=description)
    def column(admin_self: Any, obj: Any) -> SafeString | str:
        return _when(getattr(obj, attr), both=True)

    return column

class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]
    """A paginator that never counts a large table: unfiltered, it takes the planner's
    row estimate; filtered, it counts up to :attr:`cap` rows and past that takes the
    larger of the cap and the planner's estimate for the query."""

    cap = 10_000

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if not isinstance(qs, QuerySet):
            return super().count
        db = qs.db
        if not qs.query.where:
            estimate = cluster.estimated_task_count(db)
            if estimate is not None and estimate > self.cap:
                return estimate
        counted = qs.order_by()[: self.cap + 1].count()
        if counted <= self.cap:
            return counted
        return max(self.cap + 1, _planner_rows(qs))


def _planner_rows(qs: QuerySet[Any]) -> int:
    try:
        plan = json.loads(qs.order_by().explain(format="json"))
        return int(plan[0]["Plan"]["Plan Rows"])
    except (ValueError, KeyError, IndexError, TypeError):
        return 0


class TaskChangeList(ChangeList):
    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> Any:
        return super().get_queryset(request, exclude_parameters).defer(*_HEAVY_COLUMNS)


def _choices(request: HttpRequest) -> dict[str, list[str]]:
    """:func:`djq.cluster.filter_choices`, computed once per request for every filter."""
    cached: dict[str, list[str]] | None = getattr(request, "_djq_choices", None)
    if cached is None:
        cached = cluster.filter_choices(conf.database)
        setattr(request, "_djq_choices", cached)  # noqa: B010 - not an HttpRequest field
    return cached


class _ChoiceFilter(admin.SimpleListFilter):
    """Filter on one column by exact value; the choices are computed cheaply."""

    field = ""

    def choices_from(self, request: HttpRequest) -> list[str]:
        return _choices(request)[self.field]

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = list(self.choices_from(request))
        current = self.value()
        if current and current not in values:
            values.append(current)  # e.g. a task name no longer registered
        return [(v, v) for v in sorted(values)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.field: value}) if value else queryset


class StateFilter(_ChoiceFilter):
    """Celery's states, the custom ones in the data (``PROGRESS``), and "running": claimed
    or started, whatever the state says (as the API's ``?running=true``)."""

    title = "state"
    parameter_name = field = "state"
    RUNNING = "running"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(self.RUNNING, "running (claimed or started)"),
                *super().lookups(request, model_admin)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == self.RUNNING:
            return cast(TaskQuerySet, queryset).in_flight()
        return super().queryset(request, queryset)


class NameFilter(_ChoiceFilter):
    title = "task name"
    parameter_name = field = "name"


class QueueFilter(_ChoiceFilter):
    title = "queue"
    parameter_name = field = "queue"


class WorkerFilter(_ChoiceFilter):
    title = "worker"
    parameter_name = field = "worker"

    def choices_from(self, request: HttpRequest) -> list[str]:
        return sorted(set(Worker.objects.using(conf.database).values_list("hostname", flat=True)))


@admin.register(Task)
class TaskAdmin(_TaskAdminBase):
    # Fits 1280 px beside the admin's sidebar and the filters: a short id (the full one on
    # hover, with a copy button), created as a relative time and the runtime (started and
    # finished on hover); long names wrap.
    list_display = ("short_id", "task_name", "state_colour", "queue", "worker", "created",
                    "runtime")
    list_display_links = None  # short_id links to the task itself
    # Only the order an index serves: sorting a million rows by another column would not
    # open "in well under a second".
    sortable_by = ("created",)
    list_filter = (StateFilter, NameFilter, QueueFilter, WorkerFilter,
                   ("date_created", admin.DateFieldListFilter))
    search_fields = ("id", "name", "args")
    search_help_text = "A task id, or text in the task name or its arguments."
    ordering = ("-date_created",)
    list_per_page = 50
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ("retry_tasks", "revoke_tasks", "terminate_tasks")
    change_form_template = "djq/admin_task_change_form.html"
    fieldsets = (
        (None, {"fields": ("id", "task_name", "state_colour", "status", "queue", "priority",
                           "worker", "retries", "owner_name")}),
        ("Arguments", {"fields": ("args_pretty", "kwargs_pretty")}),
        ("Result", {"fields": ("progress_bar", "result_pretty", "traceback_pretty")}),
        ("Timing", {"fields": ("created_at", "eta_at", "expires_at", "claimed_at",
                               "started_at", "done_at", "runtime")}),
        ("Workflow", {"classes": ("collapse",),
                      "fields": ("parent_id", "root_id", "group_id", "options_pretty")}),
    )
    readonly_fields = (
        "id", "task_name", "state_colour", "status", "queue", "priority", "worker", "retries",
        "owner_name", "args_pretty", "kwargs_pretty", "progress_bar", "result_pretty",
        "traceback_pretty", "created_at", "eta_at", "expires_at", "claimed_at", "started_at",
        "done_at", "runtime", "parent_id", "root_id", "group_id", "options_pretty",
    )

    class Media:
        css = {"all": ["djq/admin.css"]}
        js = ["djq/time.js", "djq/admin.js"]

    # -- columns and fields --------------------------------------------------------------
    @admin.display(description="id", ordering="pk")
    def short_id(self, obj: Task) -> SafeString:
        url = reverse(f"{self.admin_site.name}:djq_task_change", args=[obj.pk])
        return format_html(
            '<span class="djq-id"><a href="{}" title="{}">{}</a>'
            '<button type="button" class="djq-copy" data-copy="{}" title="Copy the full id"'
            ' aria-label="Copy the full id"></button></span>',
            url, obj.pk, str(obj.pk)[:8], obj.pk)

    @admin.display(description="name", ordering="name")
    def task_name(self, obj: Task) -> SafeString:
        return format_html('<span class="djq-wrap">{}</span>', _breakable(obj.name))

    @admin.display(description="created", ordering="date_created")
    def created(self, obj: Task) -> SafeString | str:
        return _when(obj.date_created)

    created_at = _time_column("date_created", "created")
    eta_at = _time_column("eta", "eta")
    expires_at = _time_column("expires", "expires")
    claimed_at = _time_column("date_claimed", "claimed")
    started_at = _time_column("date_started", "started")
    done_at = _time_column("date_done", "finished")

    @admin.display(description="owner")
    def owner_name(self, obj: Task) -> str:
        """The user who enqueued it through the API, by username (``owner`` keeps the pk)."""
        if not obj.owner:
            return "-"
        User = get_user_model()
        try:
            name = User.objects.filter(pk=obj.owner).values_list(
                User.USERNAME_FIELD, flat=True).first()
        except (ValueError, TypeError, DjangoValidationError):
            name = None
        return f"{name} (#{obj.owner})" if name else f"user #{obj.owner} (deleted)"

    @admin.display(description="state", ordering="state")
    def state_colour(self, obj: Task) -> SafeString:
        if obj.retries:
            return format_html('{}<br><small class="djq-retries">retry {}</small>',
                               state_badge(obj.state), obj.retries)
        return state_badge(obj.state)

    @admin.display(description="runtime")
    def runtime(self, obj: Task) -> SafeString | str:
        hover = "\n".join(f"{label} {_absolute(value)}" for label, value in (
            ("started", obj.date_started), ("finished", obj.date_done)) if value is not None)
        seconds = display.runtime(obj.date_started, obj.date_done)
        if seconds is None:
            if obj.date_started is not None and obj.status != Status.DONE:
                elapsed = display.runtime(obj.date_started, timezone.now())
                return format_html(
                    '<span class="djq-elapsed" data-since="{}" title="{}">running {}</span>',
                    obj.date_started.isoformat(), hover, display.duration(elapsed))
            return "-"
        return format_html('<span class="djq-runtime" title="{}">{}</span>', hover,
                           display.duration(seconds))

    @admin.display(description="args")
    def args_pretty(self, obj: Task) -> SafeString:
        return _pre(display.pretty(obj.args))

    @admin.display(description="kwargs")
    def kwargs_pretty(self, obj: Task) -> SafeString:
        return _pre(display.pretty(obj.kwargs))

    @admin.display(description="result or meta")
    def result_pretty(self, obj: Task) -> SafeString | str:
        return "-" if obj.result is None else _pre(display.pretty(obj.result))

    @admin.display(description="traceback")
    def traceback_pretty(self, obj: Task) -> SafeString | str:
        return _pre(obj.traceback) if obj.traceback else "-"

    @admin.display(description="options")
    def options_pretty(self, obj: Task) -> SafeString:
        return _pre(display.pretty(obj.options))

    @admin.display(description="progress")
    def progress_bar(self, obj: Task) -> SafeString | str:
        percent = display.progress(obj.state, display.decoded(obj.result))
        if percent is None:
            return "-"
        return format_html('<progress class="djq-progress" max="100" value="{}" '
                           'style="width:20em"></progress> {}%', f"{percent:.1f}",
                           f"{percent:.0f}")

    # -- what may be done: djq.permissions, as in the monitor and the API ------------------
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return permissions.allowed(request.user, permissions.VIEW_TASKS)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return permissions.allowed(request.user, permissions.RETRY)

    def has_revoke_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return permissions.allowed(request.user, permissions.REVOKE)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tasks are sent by code, the API or the monitor

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # finished rows expire by result_expires; running ones are revoked

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return TaskChangeList

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None
                        ) -> HttpResponse:
        return super().changelist_view(request, {"title": "Tasks", **(extra_context or {})})

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Task],
                           search_term: str) -> tuple[QuerySet[Task], bool]:
        term = search_term.strip().replace("\x00", "")
        if not term:
            return queryset, False
        try:
            return queryset.filter(pk=uuid.UUID(term)), False
        except ValueError:
            pass
        return queryset.filter(Q(name__icontains=term) | Q(args__icontains=term)), False

    def changeform_view(self, request: HttpRequest, object_id: str | None = None,
                        form_url: str = "", extra_context: dict[str, Any] | None = None
                        ) -> HttpResponse:
        if request.method == "POST":
            raise PermissionDenied  # every field is read-only; actions have their own URLs
        context = {**(extra_context or {}), "title": "Task", "show_save": False,
                   "has_revoke_permission": self.has_revoke_permission(request),
                   "show_save_and_continue": False, "show_save_and_add_another": False,
                   "show_delete": False}
        return super().changeform_view(request, object_id, form_url, context)

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/retry/", view(self.retry_view), name=f"{info}_retry"),
            path("<path:object_id>/revoke/", view(self.revoke_view), name=f"{info}_revoke"),
            *super().get_urls(),
        ]

    # -- actions ---------------------------------------------------------------------------
    @admin.action(description="Retry selected finished tasks", permissions=["change"])
    def retry_tasks(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        retried = skipped = 0
        for pk in queryset.values_list("pk", flat=True):
            try:
                control.retry(pk, using=conf.database)
                retried += 1
            except (TaskNotFinished, TaskNotFound):
                skipped += 1
        message = f"Retried {retried} task(s)."
        if skipped:
            message += f" {skipped} not finished yet, left alone."
        self.message_user(request, message, messages.SUCCESS if retried else messages.WARNING)

    @admin.action(description="Revoke selected tasks", permissions=["revoke"])
    def revoke_tasks(self, request: HttpRequest, queryset: QuerySet[Task]
                     ) -> TemplateResponse | None:
        return self._revoke(request, queryset, terminate=False)

    @admin.action(description="Revoke and terminate selected tasks", permissions=["revoke"])
    def terminate_tasks(self, request: HttpRequest, queryset: QuerySet[Task]
                        ) -> TemplateResponse | None:
        return self._revoke(request, queryset, terminate=True)

    def _revoke(self, request: HttpRequest, queryset: QuerySet[Task], terminate: bool
                ) -> TemplateResponse | None:
        if request.POST.get("post") != "yes":  # ask first, as Django's delete action does
            shown = list(queryset.only("pk", "name", "state")[:20])
            return TemplateResponse(request, "djq/admin_confirm_revoke.html", {
                **self.admin_site.each_context(request),
                "title": "Revoke and terminate tasks" if terminate else "Revoke tasks",
                "opts": self.opts, "terminate": terminate, "signal": "SIGTERM",
                "shown": shown, "count": queryset.order_by()[:10_001].count(),
                "cap": 10_000,
                "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across") == "1",
                "action": "terminate_tasks" if terminate else "revoke_tasks",
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            })
        outcomes: dict[str, int] = {}
        for pk in queryset.values_list("pk", flat=True):
            outcome = control.revoke(pk, terminate=terminate, using=conf.database)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        self.message_user(request, _revoke_message(outcomes),
                          messages.SUCCESS if _affected(outcomes) else messages.WARNING)
        return None

    # -- buttons on the detail page ------------------------------------------------------
    def _task_for_action(self, request: HttpRequest, object_id: str, action: str) -> Task:
        if not permissions.allowed(request.user, action):
            raise PermissionDenied
        try:
            uuid.UUID(object_id)
        except ValueError as exc:
            raise Http404("No such task") from exc
        return get_object_or_404(Task.objects.using(conf.database).only("pk"), pk=object_id)

    def _change_url(self, task: Task) -> str:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return reverse(f"{self.admin_site.name}:{info}_change", args=[task.pk])

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse(status=405, headers={"Allow": "POST"})
        task = self._task_for_action(request, object_id, permissions.RETRY)
        try:
            control.retry(task.pk, using=conf.database)
        except TaskNotFinished:
            self.message_user(request, "The task has not finished; only finished tasks can "
                              "be retried.", messages.WARNING)
        except TaskNotFound as exc:
            raise Http404("No such task") from exc
        else:
            self.message_user(request, "Task sent again under the same id.", messages.SUCCESS)
        return HttpResponseRedirect(self._change_url(task))

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse(status=405, headers={"Allow": "POST"})
        terminate = request.POST.get("terminate") in ("1", "true", "on")
        task = self._task_for_action(
            request, object_id, permissions.TERMINATE if terminate else permissions.REVOKE)
        outcome = control.revoke(task.pk, terminate=terminate, using=conf.database)
        self.message_user(request, _revoke_message({outcome: 1}),
                          messages.SUCCESS if _affected({outcome: 1}) else messages.WARNING)
        return HttpResponseRedirect(self._change_url(task))


def _affected(outcomes: dict[str, int]) -> int:
    return outcomes.get("revoked", 0) + outcomes.get("terminating", 0)


def _revoke_message(outcomes: dict[str, int]) -> str:
    parts = [f"Revoked {outcomes.get('revoked', 0)} task(s)."]
    if outcomes.get("terminating"):
        parts.append(f"{outcomes['terminating']} running task(s) are being terminated.")
    if outcomes.get("running"):
        parts.append(f"{outcomes['running']} running task(s) left to finish "
                     "(use terminate to stop them).")
    if outcomes.get("finished"):
        parts.append(f"{outcomes['finished']} had already finished.")
    if outcomes.get("unknown"):
        parts.append(f"{outcomes['unknown']} no longer exist.")
    return " ".join(parts)


def _absolute(value: datetime.datetime) -> str:
    """"2026-12-04 14:43:42 UTC": the time in the current zone, to the second."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


def _when(value: datetime.datetime | None, both: bool = False) -> SafeString | str:
    """One time policy (``djq/static/djq/time.js``): the script shows it relative ("3 min
    ago"; with ``both``, the absolute time too) with the absolute time and zone on hover;
    without the script, the absolute time."""
    if value is None:
        return "-"
    return format_html('<time class="djq-time" datetime="{}" data-tz="{}" title="{}" '
                       'data-style="{}">{}</time>',
                       value.isoformat(), timezone.get_current_timezone_name(),
                       _absolute(value), "both" if both else "relative", _absolute(value))


def _breakable(text: str) -> SafeString:
    """``text`` escaped, with line-break opportunities after dots and underscores, so a
    long dotted task name wraps between its parts."""
    return mark_safe(  # noqa: S308 - escaped first; only <wbr> is added
        escape(text).replace(".", ".<wbr>").replace("_", "_<wbr>"))


def _pre(text: str) -> SafeString:
    return format_html('<pre class="djq-pre">{}</pre>', text)


class AliveFilter(admin.SimpleListFilter):
    title = "alive"
    parameter_name = "alive"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        workers = cast(WorkerQuerySet, queryset)
        if self.value() == "yes":
            return workers.alive()
        if self.value() == "no":
            return workers.not_alive()
        return queryset


@admin.register(Worker)
class WorkerAdmin(_WorkerAdminBase):
    # Fits 1280 px: long hostnames and queue lists wrap; times are relative (absolute on
    # hover).
    list_display = ("worker_name", "heartbeat", "pool_size", "active", "done_failed", "load",
                    "queue_list", "started")
    sortable_by = ("worker_name", "heartbeat", "started")
    list_display_links = None  # worker_name links to the worker
    list_filter = (AliveFilter, "pool")
    search_fields = ("hostname", "queues")
    ordering = (F("stopped_at").desc(nulls_first=True), "-last_heartbeat")
    fields = readonly_fields = (
        "hostname", "pid", "pool", "concurrency", "queues", "started_at_full",
        "heartbeat_full", "stopped_at_full", "processed", "failed", "active", "loadavg",
        "sw_ver")

    started_at_full = _time_column("started_at", "started")
    heartbeat_full = _time_column("last_heartbeat", "last heartbeat")
    stopped_at_full = _time_column("stopped_at", "stopped")

    class Media:
        css = {"all": ["djq/admin.css"]}
        js = ["djq/time.js"]

    @admin.display(description="alive", boolean=True)
    def alive(self, obj: Worker) -> bool:
        return obj.is_alive()

    @admin.display(description="hostname", ordering="hostname")
    def worker_name(self, obj: Worker) -> SafeString:
        url = reverse(f"{self.admin_site.name}:djq_worker_change", args=[obj.pk])
        return format_html('<a class="djq-wrap" href="{}">{}</a><br><small>pid {}</small>',
                           url, obj.hostname, obj.pid)

    @admin.display(description="heartbeat", ordering="last_heartbeat")
    def heartbeat(self, obj: Worker) -> SafeString | str:
        alive = obj.is_alive()
        return format_html('<span class="djq-dot{}" title="{}"></span>{}',
                           " djq-up" if alive else "", "alive" if alive else "not alive",
                           _when(obj.last_heartbeat))

    @admin.display(description="done / failed")
    def done_failed(self, obj: Worker) -> str:
        return f"{obj.processed} / {obj.failed}"

    @admin.display(description="started", ordering="started_at")
    def started(self, obj: Worker) -> SafeString | str:
        text = _when(obj.started_at)
        if obj.stopped_at is not None:
            return format_html("{}<br><small>stopped {}</small>", text, _when(obj.stopped_at))
        return text

    @admin.display(description="pool")
    def pool_size(self, obj: Worker) -> str:
        return f"{obj.pool} × {obj.concurrency}"

    @admin.display(description="load")
    def load(self, obj: Worker) -> SafeString | str:
        """The 1-minute load average; all three on hover."""
        figures = obj.loadavg.replace(",", " ").split()
        if not figures:
            return "-"
        return format_html('<span title="load average (1, 5, 15 min): {}">{}</span>',
                           " ".join(figures), figures[0])

    @admin.display(description="queues")
    def queue_list(self, obj: Worker) -> SafeString:
        return format_html('<span class="djq-wrap">{}</span>', obj.queues.replace(",", ", "))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return permissions.allowed(request.user, permissions.VIEW_WORKERS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


from . import admin_beat  # noqa: E402,F401 - periodic tasks (issue 15), in a module of their own
