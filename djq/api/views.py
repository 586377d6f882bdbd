"""The API's viewsets: tasks (list, enqueue, detail, retry, revoke), workers, queues and
stats. Permissions come from ``api_permission_classes``; every write runs in
``transaction.atomic()`` on djq's database, so a rejected request changes nothing."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.templatetags.static import static
from django.urls import include, path
from django.views.static import serve
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.settings import patched_settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound
from rest_framework.pagination import BasePagination, CursorPagination
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer, TemplateHTMLRenderer
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import APIRootView
from rest_framework.schemas.inspectors import ViewInspector
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from .. import cluster, control
from .. import permissions as rules
from ..conf import conf
from ..exceptions import EncodeError, TaskNotFinished, TaskNotFound
from ..models import Task, Worker
from ..publish import publish_one
from ..result import AsyncResult
from ..task import Task as TaskDef
from ..task import registry
from .filters import FilterBackend, TaskFilter, TaskSearchFilter
from .parsers import LimitedJSONParser
from .permissions import ModelPermissions, check, configured_permissions, owner_of, scope_owner
from .serializers import (
    EnqueueSerializer,
    QueueSerializer,
    RevokeResultSerializer,
    RevokeSerializer,
    StatsSerializer,
    TaskSerializer,
    WorkerSerializer,
)

F = TypeVar("F", bound=Callable[..., Any])


def document(**kwargs: Any) -> Callable[[F], F]:
    """drf-spectacular's ``extend_schema`` for a view method, built on drf-spectacular's
    AutoSchema whatever the project's DEFAULT_SCHEMA_CLASS is (djq asks for no setting)."""

    def decorator(f: F) -> F:
        if getattr(f, "schema", None) is None and "schema" not in getattr(f, "kwargs", {}):
            setattr(f, "schema", AutoSchema)  # noqa: B010 - F has no such attribute
        decorated: F = extend_schema(**kwargs)(f)
        return decorated

    return decorator


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The task is not in a state that allows this."
    default_code = "conflict"


class SafeCursorPagination(CursorPagination):
    """Cursor pagination whose cursor position is checked against its column type, so a
    forged cursor is a 404 like any other invalid cursor, never a server error."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset: Any, request: Request,
                          view: Any = None) -> list[Any] | None:
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Any:
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            ordering = self.ordering if isinstance(self.ordering, str) else self.ordering[0]
            field = self._model._meta.get_field(ordering.lstrip("-"))
            try:
                field.to_python(cursor.position)
            except (DjangoValidationError, ValueError, TypeError, OverflowError) as exc:
                raise NotFound(self.invalid_cursor_message) from exc
        return cursor


class TaskPagination(SafeCursorPagination):
    # Newest first; served by the djq_task_created index read backwards.
    ordering = ("-date_created", "-id")


class WorkerPagination(SafeCursorPagination):
    ordering = "-id"


class DjqAPIMixin:
    """Permissions from the settings, then Django's model permissions for the view's
    action (:mod:`djq.permissions`); JSON in, JSON errors, drf-spectacular's schema."""

    schema: ViewInspector | None = AutoSchema()
    parser_classes: Sequence[type[BaseParser]] = [LimitedJSONParser]
    #: The action of :mod:`djq.permissions` this view takes (None: the outer gate only).
    djq_permission: str | None = rules.VIEW_TASKS

    def get_permissions(self) -> list[BasePermission]:
        return [*configured_permissions(), ModelPermissions()]

    def djq_action(self, request: Request) -> str | None:
        return self.djq_permission

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return json_exception_handler


def json_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus the errors Django raises while reading a request (a body over
    ``DATA_UPLOAD_MAX_MEMORY_SIZE``, too many fields), which it would answer in HTML."""
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": f"Request body too large: {exc}"},
                        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, SuspiciousOperation):
        return Response({"detail": f"Bad request: {exc}"}, status=status.HTTP_400_BAD_REQUEST)
    handler: Callable[[Exception, dict[str, Any]], Response | None] = (
        api_settings.EXCEPTION_HANDLER)  # type: ignore[assignment]
    return handler(exc, context)


def _db() -> str:
    return str(conf.database)


# Anything up to the next slash: an id that is not a UUID gets a JSON 404 from get_object,
# not Django's HTML page for a URL that matches no route.
_TASK_ID = "[^/]+"


@extend_schema(tags=["tasks"])
def _enqueue(task: TaskDef, args: Any, kwargs: Any, owner: str | None, db: str,
             options: dict[str, Any]) -> Any:
    """Send ``task`` as ``apply_async`` does, with the row's ``owner`` written by the same
    INSERT (inline under ``task_always_eager``: then nothing is stored)."""
    if conf.task_always_eager:
        return task.apply_async(args=args, kwargs=kwargs, using=db, **options)
    call = task.prepare(args, kwargs, owner=owner, using=db, **options)
    publish_one(call, using=db)
    return AsyncResult(str(call.message.id), task_name=task.name, using=db)


class TaskViewSet(DjqAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                  viewsets.GenericViewSet[Task]):
    """Tasks, newest first. Non-staff users of an owner-scoped API see only their own."""

    serializer_class = TaskSerializer
    pagination_class = TaskPagination
    filter_backends = [FilterBackend, TaskSearchFilter]
    filterset_class = TaskFilter
    search_fields = ["id", "name", "args"]  # documents ?search= (TaskSearchFilter does it)
    lookup_value_regex = _TASK_ID
    djq_actions = {"create": rules.ENQUEUE, "retry": rules.RETRY, "revoke": rules.REVOKE}

    def djq_action(self, request: Request) -> str | None:
        return self.djq_actions.get(str(getattr(self, "action", None)), rules.VIEW_TASKS)

    def get_queryset(self) -> QuerySet[Task]:
        queryset = Task.objects.using(_db()).defer("options")
        owner = scope_owner(self.request)
        if owner is not None:
            queryset = queryset.filter(owner=owner)
        return queryset

    def get_object(self) -> Task:
        try:
            uuid.UUID(str(self.kwargs.get(self.lookup_field, "")))
        except ValueError as exc:
            raise NotFound("No task with this id.") from exc
        return super().get_object()

    @document(
        summary="One task: state, progress, result",
        description="Cheap enough to poll: one lookup by primary key. Send the ETag back in "
                    "If-None-Match to get 304 while nothing changed.",
        responses={200: TaskSerializer, 304: OpenApiResponse(description="Not modified"),
                   404: OpenApiResponse(description="No such task (or not yours)")},
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        task = self.get_object()
        etag = _etag(task)
        if etag in _if_none_match(request):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        return Response(self.get_serializer(task).data, headers={"ETag": etag})

    @document(
        summary="Enqueue an allow-listed task",
        request=EnqueueSerializer,
        responses={201: TaskSerializer,
                   400: OpenApiResponse(description="Invalid payload, or a name outside "
                                                    "api_enqueue_allowlist")},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = EnqueueSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        task = registry[data["name"]]
        options = {k: data[k] for k in ("countdown", "eta", "queue", "priority")
                   if data.get(k) is not None}
        db = _db()
        with transaction.atomic(using=db):
            try:
                result = _enqueue(task, data["args"], data["kwargs"], owner_of(request), db,
                                  options)
            except (TypeError, ValueError, EncodeError) as exc:
                raise serializers.ValidationError(
                    {api_settings.NON_FIELD_ERRORS_KEY: [str(exc)]}) from exc
        row = Task.objects.using(db).filter(pk=result.id).first()
        if row is None:  # run inline (task_always_eager): nothing is stored
            return Response({"id": result.id, "name": task.name, "state": result.state},
                            status=status.HTTP_201_CREATED)
        return Response(TaskSerializer(row).data, status=status.HTTP_201_CREATED,
                        headers={"Location": f"{result.id}/"})

    @document(
        summary="Send a finished task again under the same id",
        request=None,
        responses={200: TaskSerializer,
                   404: OpenApiResponse(description="No such task (or not yours)"),
                   409: OpenApiResponse(description="The task has not finished")},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        task = self.get_object()
        with transaction.atomic(using=_db()):
            try:
                control.retry(task.pk, using=_db())
            except TaskNotFound as exc:
                raise NotFound("No task with this id.") from exc
            except TaskNotFinished as exc:
                raise Conflict(str(exc)) from exc
        task.refresh_from_db()
        return Response(self.get_serializer(task).data)

    @document(
        summary="Revoke a task (and kill it if running, with terminate)",
        request=RevokeSerializer,
        responses={200: RevokeResultSerializer,
                   400: OpenApiResponse(description="Invalid payload"),
                   404: OpenApiResponse(description="No such task (or not yours)")},
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        task = self.get_object()
        payload = RevokeSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        if payload.validated_data["terminate"]:
            check(request, self, rules.TERMINATE)
        with transaction.atomic(using=_db()):
            outcome = control.revoke(task.pk, terminate=payload.validated_data["terminate"],
                                     signal=payload.validated_data["signal"], using=_db())
        if outcome == "unknown":
            raise NotFound("No task with this id.")
        task.refresh_from_db()
        return Response({"outcome": outcome, "task": self.get_serializer(task).data})


def _etag(task: Task) -> str:
    digest = hashlib.blake2b(digest_size=12)
    for part in (task.state, task.status, task.retries, task.worker, task.date_started,
                 task.date_done, task.result, task.traceback):
        digest.update(repr(part).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return f'"{digest.hexdigest()}"'


def _if_none_match(request: Request) -> set[str]:
    header = request.headers.get("If-None-Match", "")
    return {part.strip() for part in header.split(",") if part.strip()}


@extend_schema(tags=["workers"])
class WorkerViewSet(DjqAPIMixin, mixins.ListModelMixin, viewsets.GenericViewSet[Worker]):
    """Worker processes, newest first: alive ones and those stopped within the hour."""

    serializer_class = WorkerSerializer
    pagination_class = WorkerPagination
    djq_permission = rules.VIEW_WORKERS

    def get_queryset(self) -> QuerySet[Worker]:
        return Worker.objects.using(_db()).all()


class SinglePage(BasePagination):
    """Every row in one page, in the shape of the other lists (``next``, ``previous``,
    ``results``): for the short list of queues."""

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None
                          ) -> list[Any] | None:
        return list(queryset)

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"next": None, "previous": None, "results": data})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {"type": "string", "nullable": True},
                "previous": {"type": "string", "nullable": True},
                "results": schema,
            },
        }


@extend_schema(tags=["queues"])
class QueueViewSet(DjqAPIMixin, viewsets.ViewSet):
    """Every queue with tasks, recent traffic or a live worker."""

    serializer_class = QueueSerializer
    pagination_class = SinglePage

    @document(responses=QueueSerializer)
    def list(self, request: Request) -> Response:
        paginator = SinglePage()
        rows = paginator.paginate_queryset([q.as_dict() for q in cluster.queue_stats(_db())],
                                           request, self) or []
        return paginator.get_paginated_response(QueueSerializer(rows, many=True).data)


@extend_schema(tags=["stats"])
class StatsView(DjqAPIMixin, APIView):
    """Counts, rates and workers, answered from indexes only (cheap to poll)."""

    @document(responses=StatsSerializer)
    def get(self, request: Request) -> Response:
        return Response(cluster.task_stats(owner=scope_owner(request), using=_db()))


class RootView(DjqAPIMixin, APIRootView):
    """djq's REST API."""

    schema = None
    djq_permission = None


SCHEMA_SETTINGS = {
    "TITLE": "djq",
    "DESCRIPTION": "Tasks, workers, queues and stats of a djq task queue.",
    "VERSION": "1",
    "COMPONENT_SPLIT_REQUEST": True,
}


def openapi_schema(prefix: str = "api/djq/", request: Request | None = None) -> dict[str, Any]:
    """The OpenAPI 3 document of this API as mounted under ``prefix``."""
    generator = SchemaGenerator(  # type: ignore[no-untyped-call]
        patterns=[path(prefix, include("djq.api.urls"))])
    with patched_settings(SCHEMA_SETTINGS):
        schema: dict[str, Any] = generator.get_schema(  # type: ignore[no-untyped-call]
            request=request, public=True)
    return schema


class SchemaView(SpectacularAPIView):
    """The OpenAPI 3 schema of this API, wherever its URLs are included."""

    schema: ViewInspector | None = AutoSchema()  # whatever DEFAULT_SCHEMA_CLASS says

    def get_permissions(self) -> list[BasePermission]:
        return configured_permissions()

    @document(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # Describe only this API, under the prefix its URLs are included with.
        prefix = request.path_info[: -len("schema/")].lstrip("/")
        return Response(openapi_schema(prefix, request),
                        headers={"Content-Disposition": 'inline; filename="djq-api.yaml"'})


def _sidecar_dir() -> Path:
    import drf_spectacular_sidecar

    return (Path(drf_spectacular_sidecar.__file__).parent / "static" / "drf_spectacular_sidecar"
            / "swagger-ui-dist")


#: The Swagger UI files djq serves from drf-spectacular-sidecar (nothing else is served).
SWAGGER_ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js",
                            "swagger-ui-standalone-preset.js", "favicon-32x32.png"})


class DocsView(APIView):
    """Swagger UI over ``schema/``, served from drf-spectacular-sidecar's files (no CDN,
    no INSTALLED_APPS entry needed). Who may open it is ``api_permission_classes``."""

    schema = None
    renderer_classes = [TemplateHTMLRenderer]

    def get_permissions(self) -> list[BasePermission]:
        return configured_permissions()

    def handle_exception(self, exc: Exception) -> Response:
        # Errors are JSON, as everywhere in the API, even for a browser asking for HTML.
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return response

    def get(self, request: Request) -> Response:
        base = request.path[: -len("docs/")]
        return Response({
            "schema_url": f"{base}schema/", "root_url": base, "assets": f"{base}docs/assets/",
            "assets_init": static("djq/swagger-init.js"),
        }, template_name="djq/api/docs.html")


def docs_asset(request: HttpRequest, name: str) -> HttpResponseBase:
    """One of :data:`SWAGGER_ASSETS`, cached for a day (the sidecar's version is pinned by
    the install)."""
    if name not in SWAGGER_ASSETS:
        raise Http404("No such file")
    response = serve(request, name, document_root=str(_sidecar_dir()))
    response["Cache-Control"] = "public, max-age=86400"
    return response


__all__ = ["TaskViewSet", "WorkerViewSet", "QueueViewSet", "StatsView", "SchemaView",
           "DocsView", "docs_asset", "openapi_schema"]
