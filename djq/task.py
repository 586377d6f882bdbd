"""Tasks: the ``@task`` decorator and the :class:`Task` class (the registry of names is
:mod:`djq.registry`, ``task.request`` is :class:`djq._state.Context`)."""

from __future__ import annotations

import datetime
import functools
import inspect
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any, overload

from django.utils import timezone

from . import broker, routes, serialization, states
from . import options as option_checks
from ._state import Context as Context  # re-exported: task.request's type
from ._state import current_request
from .bulk import send_many
from .canvas import Signature, xmap, xstarmap
from .canvas import chunks as chunks_signature
from .conf import conf
from .exceptions import (
    MaxRetriesExceededError,
    Retry,
)
from .publish import Prepared, publish_one
from .registry import Registry as Registry  # re-exported
from .registry import registry as registry  # re-exported
from .result import AsyncResult, EagerResult
from .serialization import encode_arguments as encode_arguments  # re-exported
from .trace import trace_eager

logger = logging.getLogger(__name__)


class _RequestStack(threading.local):
    def __init__(self) -> None:
        self.stack: list[Context] = []


_EXTRA_OPTIONS = frozenset({
    "parent_id", "root_id", "group_id", "retries", "time_limit", "soft_time_limit",
    "argsrepr", "kwargsrepr", "shadow", "chord", "using",
})


def _origin() -> str:
    return f"gen{os.getpid()}@{socket.gethostname()}"


def _to_datetime(value: Any, name: str) -> datetime.datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value)
    raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")


def _seconds(value: Any, name: str) -> float | None:
    return option_checks.seconds(value, name)


class Template:
    """What a call of a task takes from its options, not from its arguments or its id:
    worked out once (checked, routed, timed), then turned into the row and the protocol
    headers of one call, or of every plain member of a group (:mod:`djq.canvas_rows`)."""

    def __init__(self, *, name: str, queue: str, priority: int, now: datetime.datetime,
                 eta: datetime.datetime | None, expires: datetime.datetime | None,
                 task_id: uuid.UUID | None, retries: Any, parent_id: Any, root_id: Any,
                 group_id: Any, opts: dict[str, Any], ignore_result: bool,
                 headers: dict[str, Any], argsrepr: str | None,
                 kwargsrepr: str | None) -> None:
        self.name = name
        self.queue = queue
        self.priority = priority
        self.now = now
        self.eta = eta
        self.expires = expires
        self.task_id = task_id  # the id asked for, if any
        self.opts = opts  # the row's options, as a dict
        self._retries = retries
        self._ids = (parent_id, root_id, group_id)  # as given; root None: its own root
        self.ignore_result = ignore_result
        self.user_headers = headers
        self.argsrepr = argsrepr
        self.kwargsrepr = kwargsrepr
        # The headers every call shares, as text (the protocol's form).
        self._parent = str(parent_id) if parent_id else None
        self._root = str(root_id) if root_id else None
        self._group = str(group_id) if group_id else None
        self._eta = eta.isoformat() if eta else None
        self._expires = expires.isoformat() if expires else None
        self._origin = _origin()

    # The parts of the row that can fail to convert are worked out on first use, after
    # the first call's arguments are encoded, in the order prepare() always has: a
    # call with several faults reports the same one.
    @functools.cached_property
    def options_json(self) -> str:
        return serialization.dumps(self.opts)

    @functools.cached_property
    def _row_ids(self) -> tuple[int, uuid.UUID | None, uuid.UUID | None, uuid.UUID | None]:
        """retries, parent_id, root_id and group_id, as stored."""
        retries = int(self._retries or 0)
        parent_id, root_id, group_id = self._ids
        return retries, _maybe_uuid(parent_id), _maybe_uuid(root_id), _maybe_uuid(group_id)

    def message(self, task_id: uuid.UUID, args_json: str, kwargs_json: str, *,
                options: str | None = None, root_id: uuid.UUID | None = None,
                status: int = broker.WAITING, waiting_on: uuid.UUID | None = None,
                owner: str | None = None, canvas: str | None = None) -> broker.Message:
        """The row of one call. A canvas gives the fields it decides: the options with
        its flags, the canvas's root, and a DEFERRED step's status and what it waits on."""
        options = self.options_json if options is None else options
        retries, parent, root, group = self._row_ids
        return broker.Message(
            id=task_id, name=self.name, queue=self.queue, priority=self.priority,
            args=args_json, kwargs=kwargs_json, options=options, run_at=self.eta or self.now,
            date_created=self.now, eta=self.eta, expires=self.expires, retries=retries,
            parent_id=parent, root_id=root_id or root or task_id, group_id=group,
            status=status, waiting_on=waiting_on, owner=owner, canvas=canvas,
        )

    def headers(self, task_id: uuid.UUID, args: list[Any],
                kwargs: dict[str, Any]) -> dict[str, Any]:
        """Celery's protocol-2 headers of one call, as the publish signals carry them."""
        tid = str(task_id)
        return {
            "lang": "py", "task": self.name, "id": tid, "root_id": self._root or tid,
            "parent_id": self._parent, "group": self._group, "eta": self._eta,
            "expires": self._expires, "retries": self._row_ids[0],
            "argsrepr": self.argsrepr or repr(tuple(args)),
            "kwargsrepr": self.kwargsrepr or repr(kwargs),
            "origin": self._origin, "ignore_result": self.ignore_result,
            **self.user_headers,
        }


# The options @task takes (a base class's own attributes are options too, as in Celery).
TASK_OPTIONS = frozenset({
    "name", "bind", "typing", "max_retries", "default_retry_delay", "queue", "priority",
    "ignore_result", "store_errors_even_if_ignored", "track_started", "acks_late",
    "time_limit", "soft_time_limit", "autoretry_for", "dont_autoretry_for", "retry_kwargs",
    "retry_backoff", "retry_backoff_max", "retry_jitter", "rate_limit",
    "reject_on_worker_lost", "max_deliveries", "expires", "throws", "serializer", "trail", "send_events",
    "acks_on_failure_or_timeout", "store_eager_result", "abstract",
})


class Task:
    """A registered function that can run inline or be sent to workers."""

    name: str = ""
    typing: bool = True
    bind: bool = False
    max_retries: int | None = 3
    default_retry_delay: float = 180
    queue: str | None = None
    priority: int | None = None
    ignore_result: bool | None = None
    store_errors_even_if_ignored: bool | None = None
    track_started: bool | None = None
    acks_late: bool | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    autoretry_for: tuple[type[BaseException], ...] = ()
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    retry_kwargs: dict[str, Any] = {}
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600
    retry_jitter: bool = True
    rate_limit: str | None = None
    reject_on_worker_lost: bool | None = None
    max_deliveries: int | None = None
    expires: float | datetime.datetime | None = None
    throws: tuple[type[BaseException], ...] = ()
    # Celery's, accepted with the value that asks for what djq does (see options.py).
    serializer: str | None = None
    trail: bool = True
    send_events: bool = True
    acks_on_failure_or_timeout: bool = True
    store_eager_result: bool = False
    abstract: bool | None = None

    _SENTINEL: Any = object()

    def __init__(self, fun: Callable[..., Any] | None = None, **options: Any) -> None:
        self._stack = _RequestStack()
        for key, value in options.items():
            if key not in TASK_OPTIONS and not _set_by_subclass(type(self), key):
                raise TypeError(f"Unknown task option {key!r}")
            setattr(self, key, value)
        # Unless the call or a base class gives them, these come from the settings.
        if "max_retries" not in options and not _set_by_subclass(type(self), "max_retries"):
            self.max_retries = self._SENTINEL  # resolved from conf at retry time
        if ("default_retry_delay" not in options
                and not _set_by_subclass(type(self), "default_retry_delay")):
            self.default_retry_delay = self._SENTINEL
        self.autoretry_for = tuple(self.autoretry_for or ())
        self.dont_autoretry_for = tuple(self.dont_autoretry_for or ())
        self.throws = tuple(self.throws or ())
        if fun is not None:
            self.run = fun  # type: ignore[method-assign]
            self.__wrapped__ = fun
            self.__doc__ = fun.__doc__
            self.__module__ = fun.__module__
            self.__name__ = fun.__name__
            self.__qualname__ = getattr(fun, "__qualname__", fun.__name__)
            if not self.name:
                self.name = f"{fun.__module__}.{fun.__name__}"
        elif type(self).run is not Task.run:
            # A class-based task (Celery's ``class MyTask(Task)`` with ``run()``), named
            # after its class unless it says otherwise, as Celery names it.
            cls = type(self)
            self.__module__ = cls.__module__
            self.__name__ = cls.__name__
            self.__doc__ = cls.__doc__
            if not self.name:
                self.name = f"{cls.__module__}.{cls.__name__}"
        option_checks.check_task_options(self)
        self._signature = inspect.signature(self.run) if self.typing else None
        if self._signature is not None and self.bind:
            params = list(self._signature.parameters.values())[1:]
            self._signature = self._signature.replace(parameters=params)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("Tasks must define the run method.")

    # -- handlers (Celery's): called in the worker, and by apply() ---------------------------
    def before_start(self, task_id: str, args: Any, kwargs: dict[str, Any]) -> None:
        """Called before the body runs; an exception raised here fails the task."""

    def on_success(self, retval: Any, task_id: str, args: Any,
                   kwargs: dict[str, Any]) -> None:
        """Called when the task succeeded, before ``task_success`` is sent."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any,
                   kwargs: dict[str, Any], einfo: Any) -> None:
        """Called when the task failed, before ``task_failure`` is sent."""

    def on_retry(self, exc: BaseException | None, task_id: str, args: Any,
                 kwargs: dict[str, Any], einfo: Any) -> None:
        """Called when the task is to be retried, before ``task_retry`` is sent."""

    def after_return(self, status: str, retval: Any, task_id: str, args: Any,
                     kwargs: dict[str, Any], einfo: Any) -> None:
        """Called after the task succeeded or failed (not when it retries)."""

    # -- resolved options ----------------------------------------------------------------
    def _opt(self, value: Any, setting: str) -> Any:
        return getattr(conf, setting) if value is None or value is self._SENTINEL else value

    @property
    def resolved_max_retries(self) -> int | None:
        if self.max_retries is self._SENTINEL:
            return conf.task_max_retries
        return self.max_retries

    @property
    def resolved_retry_delay(self) -> float:
        return float(self._opt(self.default_retry_delay, "task_default_retry_delay"))

    def option(self, attr: str) -> Any:
        """A task option, falling back to the global ``task_<attr>`` setting."""
        return self._opt(getattr(self, attr), f"task_{attr}")

    # -- the request -----------------------------------------------------------------------
    @property
    def request(self) -> Context:
        stack = self._stack.stack
        return stack[-1] if stack else Context()

    def push_request(self, *args: Any, **kwargs: Any) -> None:
        self._stack.stack.append(Context(*args, **kwargs))

    def pop_request(self) -> None:
        self._stack.stack.pop()

    # -- calling -----------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task inline, in this process."""
        stack = self._stack.stack
        if not stack or stack[-1].called_directly:
            self.push_request(args=args, kwargs=kwargs)
            try:
                return self._call_run(args, kwargs)
            finally:
                self.pop_request()
        return self._call_run(args, kwargs)

    def _call_body(self, args: Iterable[Any], kwargs: dict[str, Any]) -> Any:
        """The body as a worker runs it: through ``__call__`` where a base class overrides
        it (a Celery pattern: wrap every run of its tasks), else ``run()`` directly."""
        if type(self).__call__ is not Task.__call__:
            return self(*args, **kwargs)
        return self._call_run(args, kwargs)

    def _call_run(self, args: Iterable[Any], kwargs: dict[str, Any]) -> Any:
        if self.bind:
            return self.run(self, *args, **kwargs)
        return self.run(*args, **kwargs)

    def check_arguments(self, args: Any, kwargs: dict[str, Any]) -> None:
        """Raise TypeError at call time if the arguments do not fit the function."""
        if self._signature is None:
            return
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}: {exc}") from exc

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """Send the task with these arguments; returns an ``AsyncResult`` at once."""
        return self.apply_async(args, kwargs)

    def delay_many(self, calls: Iterable[Any], **options: Any) -> list[Any]:
        """Send many calls at once: ``calls`` are ``(args, kwargs)`` pairs, ``options``
        those of :meth:`apply_async`, shared by every call. Each call is checked as
        ``delay()`` checks it; returns an ``AsyncResult`` for each, in order. Rows go in by
        ``COPY`` within the caller's transaction, if any (see :mod:`djq.bulk`)."""
        return send_many(self, calls, options)

    async def adelay(self, *args: Any, **kwargs: Any) -> Any:
        """:meth:`delay` for async callers."""
        return await self.aapply_async(args, kwargs)

    async def aapply_async(self, args: Any = None, kwargs: dict[str, Any] | None = None,
                           **options: Any) -> Any:
        """:meth:`apply_async` for async callers: the row is written from a thread of
        Django's (as ``sync_to_async`` does), not on the event loop."""
        from asgiref.sync import sync_to_async

        return await sync_to_async(self.apply_async)(args, kwargs, **options)

    def apply_async(
        self,
        args: Any = None,
        kwargs: dict[str, Any] | None = None,
        countdown: float | None = None,
        eta: datetime.datetime | None = None,
        expires: float | datetime.datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        task_id: str | uuid.UUID | None = None,
        link: Signature | list[Signature] | None = None,
        link_error: Signature | list[Signature] | None = None,
        ignore_result: bool | None = None,
        headers: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Send the task to a worker; returns an ``AsyncResult`` at once.

        Everything is checked and encoded before anything is stored: a bad option or an
        argument JSON cannot carry raises here and leaves no row behind.
        """
        call = self.prepare(
            args, kwargs, countdown=countdown, eta=eta, expires=expires, queue=queue,
            priority=priority, task_id=task_id, link=link, link_error=link_error,
            ignore_result=ignore_result, headers=headers, **options)
        if conf.task_always_eager:
            return self.apply(
                args, kwargs, task_id=str(call.message.id), link=link, link_error=link_error,
                ignore_result=ignore_result, headers=headers, **options,
            )
        using = options.get("using")
        publish_one(call, using=using)
        return AsyncResult(str(call.message.id), task_name=self.name, using=using)

    def prepare(
        self, args: Any = None, kwargs: dict[str, Any] | None = None, *,
        countdown: float | None = None, eta: datetime.datetime | None = None,
        expires: float | datetime.datetime | None = None, queue: str | None = None,
        priority: int | None = None, task_id: str | uuid.UUID | None = None,
        link: Signature | list[Signature] | None = None,
        link_error: Signature | list[Signature] | None = None,
        ignore_result: bool | None = None, headers: dict[str, Any] | None = None,
        owner: str | None = None, **options: Any,
    ) -> Prepared:
        """Check and encode one call as :meth:`apply_async` sends it, without sending it:
        its row and its publish headers (send it with :func:`djq.publish.publish_one`).
        ``owner`` is stored with the row (the REST API's ``api_owner_scoped``)."""
        self.check_options(options)
        args, kwargs = self.checked_arguments(args, kwargs)
        template = self.call_template(
            countdown=countdown, eta=eta, expires=expires, queue=queue, priority=priority,
            task_id=task_id, link=link, link_error=link_error, ignore_result=ignore_result,
            headers=headers, options=options, args=args, kwargs=kwargs)
        tid = template.task_id or uuid.uuid4()
        args_json, kwargs_json = encode_arguments(args, kwargs)
        message = template.message(tid, args_json, kwargs_json, owner=owner)
        return Prepared(message, (args, kwargs, {}), template.headers(tid, args, kwargs))

    # The steps of prepare(), in the order it checks things (so a call with several
    # faults reports the same one): a canvas runs the first and the last per task, and
    # shares one template among the plain members of a group.
    @staticmethod
    def check_options(options: dict[str, Any]) -> None:
        """Raise for an option ``apply_async`` does not take, or cannot honour."""
        unknown = set(options) - option_checks.PUBLISH_OPTIONS - _EXTRA_OPTIONS
        if unknown:
            raise TypeError(f"apply_async() got unexpected options: {sorted(unknown)}")
        option_checks.check_publish_options(options)

    def checked_arguments(self, args: Any,
                          kwargs: dict[str, Any] | None) -> tuple[list[Any], dict[str, Any]]:
        """The arguments as a list and a dict, once they fit the function."""
        args = list(args) if args is not None else []
        if not isinstance(kwargs or {}, dict):
            raise TypeError("kwargs must be a dict")
        kwargs = dict(kwargs or {})
        if self.typing:
            self.check_arguments(args, kwargs)
        return args, kwargs

    def call_template(
        self, *, countdown: Any = None, eta: Any = None, expires: Any = None,
        queue: str | None = None, priority: int | None = None, task_id: Any = None,
        link: Any = None, link_error: Any = None, ignore_result: bool | None = None,
        headers: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
        args: Any = (), kwargs: dict[str, Any] | None = None,
    ) -> Template:
        """What calls with these options share (checked, routed, timed): the rows of
        many calls come from one template (``delay_many``, a group's plain members)."""
        options = options or {}
        option_checks.check_call_options(options)
        now = timezone.now()
        countdown_s = _seconds(countdown, "countdown")
        eta_dt = _to_datetime(eta, "eta")
        if countdown_s is not None and eta_dt is not None:
            raise ValueError("Give countdown or eta, not both")
        if countdown_s is not None:
            eta_dt = now + datetime.timedelta(seconds=countdown_s)
        if expires is None:
            expires = self.expires  # the task's default, as in Celery
        if isinstance(expires, datetime.datetime):
            expires_dt = _to_datetime(expires, "expires")
        else:
            expires_s = _seconds(expires, "expires")
            expires_dt = None if expires_s is None else now + datetime.timedelta(seconds=expires_s)
        # As in Celery: the call's options, then the task's, then task_routes, then the
        # defaults.
        queue = queue if queue is not None else self.queue
        priority = priority if priority is not None else self.priority
        if queue is None or priority is None:
            routed = routes.route(self.name, list(args or ()), dict(kwargs or {}),
                                  {"queue": queue, "priority": priority, **options}, self)
            queue = queue if queue is not None else routed.get("queue")
            priority = priority if priority is not None else routed.get("priority")
        if queue is None:
            queue = conf.task_default_queue
        option_checks.check_queue(queue)
        if priority is None:
            priority = conf.task_default_priority
        option_checks.check_priority(priority)
        tid: uuid.UUID | None = None
        if task_id is not None:
            try:
                tid = task_id if isinstance(task_id, uuid.UUID) else uuid.UUID(str(task_id))
            except ValueError as exc:
                raise ValueError(f"task_id must be a UUID, not {task_id!r}") from exc
        if headers is not None and not isinstance(headers, dict):
            raise TypeError("headers must be a dict")
        links = _signature_list(link, "link")
        errbacks = _signature_list(link_error, "link_error")
        parent_id = options.get("parent_id")
        root_id = options.get("root_id")
        group_id = options.get("group_id")
        if parent_id is None:
            current = current_request()
            if current is not None and current.id:
                parent_id = current.id
                root_id = root_id or current.root_id or current.id
        opts: dict[str, Any] = {}
        if links:
            opts["link"] = links
        if errbacks:
            opts["link_error"] = errbacks
        if ignore_result is not None:
            opts["ignore_result"] = bool(ignore_result)
        # argsrepr/kwargsrepr (Celery's way to keep secrets out of logs and events) ride
        # along for the worker's task-received event.
        for key in ("time_limit", "soft_time_limit", "shadow", "chord", "argsrepr",
                    "kwargsrepr"):
            if options.get(key) is not None:
                opts[key] = options[key]
        if headers:
            opts["headers"] = headers
        return Template(
            name=self.name, queue=queue, priority=priority, now=now, eta=eta_dt,
            expires=expires_dt, task_id=tid, retries=options.get("retries"),
            parent_id=parent_id, root_id=root_id, group_id=group_id, opts=opts,
            ignore_result=bool(ignore_result), headers=headers or {},
            argsrepr=options.get("argsrepr"), kwargsrepr=options.get("kwargsrepr"),
        )

    def apply(self, args: Any = None, kwargs: dict[str, Any] | None = None,
              task_id: str | None = None, link: Any = None, link_error: Any = None,
              retries: int = 0, throw: bool | None = None, **options: Any) -> Any:
        """Run the task inline as a worker would, returning an ``EagerResult``."""

        args = list(args or ())
        kwargs = dict(kwargs or {})
        task_id = task_id or str(uuid.uuid4())
        if throw is None:
            throw = conf.task_eager_propagates
        request = Context(
            id=task_id, task=self.name, args=args, kwargs=kwargs, retries=retries,
            is_eager=True, called_directly=False, hostname=socket.gethostname(),
            callbacks=_signature_list(link, "link"), errbacks=_signature_list(link_error,
                                                                               "link_error"),
            root_id=options.get("root_id") or task_id, parent_id=options.get("parent_id"),
            group=options.get("group_id"), delivery_info={"is_eager": True},
            ignore_result=bool(options.get("ignore_result")),
        )
        state, value, tb = trace_eager(self, request, throw=bool(throw))
        return EagerResult(task_id, value, state, traceback=tb, name=self.name)

    # -- inside a task -----------------------------------------------------------------
    def retry(self, args: Any = None, kwargs: dict[str, Any] | None = None,
              exc: BaseException | None = None, throw: bool = True,
              eta: datetime.datetime | None = None, countdown: float | None = None,
              max_retries: int | None = None, **options: Any) -> Retry:
        """Retry this task later, keeping its id; ``raise self.retry(...)``.

        Past ``max_retries`` it raises ``exc`` if given, else MaxRetriesExceededError.
        """
        request = self.request
        if request.called_directly:
            raise exc or Retry("Task can be retried", None)
        limit = max_retries if max_retries is not None else self.resolved_max_retries
        if limit is not None and request.retries >= limit:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"Can't retry {self.name}[{request.id}] args:{tuple(request.args)} "
                f"kwargs:{request.kwargs}",
                task_args=request.args, task_kwargs=request.kwargs,
            )
        if eta is None and countdown is None:
            countdown = self.resolved_retry_delay
        when: Any = eta if eta is not None else countdown
        ret = Retry(exc=exc, when=when)
        ret.retry_args = list(args) if args is not None else None  # type: ignore[attr-defined]
        ret.retry_kwargs = dict(kwargs) if kwargs is not None else None  # type: ignore[attr-defined]
        ret.eta = (_to_datetime(eta, "eta") if eta is not None else  # type: ignore[attr-defined]
                   timezone.now() + datetime.timedelta(seconds=float(countdown or 0)))
        if request.is_eager:
            # As Celery does: run the retry at once, inline, and hand back its result.
            result = self.apply(
                ret.retry_args if ret.retry_args is not None else request.args,  # type: ignore[attr-defined]
                ret.retry_kwargs if ret.retry_kwargs is not None else request.kwargs,  # type: ignore[attr-defined]
                task_id=request.id, retries=request.retries + 1, throw=True,
                link=request.callbacks, link_error=request.errbacks,
            )
            ret.eager_result = result  # type: ignore[attr-defined]
        if throw:
            raise ret
        return ret

    def update_state(self, task_id: str | None = None, state: str | None = None,
                     meta: Any = None, **kwargs: Any) -> None:
        """Store a custom state (e.g. PROGRESS) with ``meta``; ``AsyncResult.info`` reads it."""
        request = self.request
        task_id = task_id or request.id
        if task_id is None or request.is_eager and task_id == request.id:
            return
        broker.update_state(task_id, state or states.PENDING, serialization.dumps(meta))

    # -- conveniences ----------------------------------------------------------------------
    def AsyncResult(self, task_id: str, **kwargs: Any) -> Any:  # noqa: N802 - Celery's name
        return AsyncResult(task_id, task_name=self.name, **kwargs)

    def signature(self, args: Any = None, *starargs: Any, **starkwargs: Any) -> Signature:
        starkwargs.setdefault("type", self)
        return Signature(self, args, *starargs, **starkwargs)

    subtask = signature

    def map(self, it: Iterable[Any]) -> Signature:
        """One task calling this one with each item of ``it`` (Celery's ``xmap``)."""
        return xmap(self.s(), it)

    def starmap(self, it: Iterable[Any]) -> Signature:
        """One task calling this one with each argument tuple of ``it``."""
        return xstarmap(self.s(), it)

    def chunks(self, it: Iterable[Any], n: int) -> Signature:
        """``it``'s argument tuples in parts of ``n``, one ``starmap`` task each."""
        return chunks_signature(self.s(), it, n)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        return self.signature(args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        return self.signature(args, kwargs, immutable=True)

    def __repr__(self) -> str:
        return f"<@task: {self.name}>"


def _set_by_subclass(cls: type[Task], attr: str) -> bool:
    """Whether a class between ``cls`` and :class:`Task` sets ``attr`` (a shared base's
    option, as Celery's abstract task classes carry them)."""
    return any(attr in vars(klass) for klass in cls.__mro__
               if klass is not Task and issubclass(klass, Task))


def register_task(task: Task) -> Task:
    """Register a class-based task instance under its name (Celery's
    ``app.register_task``); returns it."""
    if not isinstance(task, Task):
        raise TypeError(f"register_task() takes a Task instance, not {type(task).__name__}")
    if type(task).run is Task.run and getattr(task, "__wrapped__", None) is None:
        raise TypeError(f"{type(task).__name__} defines no run() method")
    return registry.register(task)


registry.task_class = Task
unregistered = registry.unregistered  # a task known only by name (djq.registry)


def _maybe_uuid(value: Any) -> uuid.UUID | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _signature_list(value: Any, name: str) -> list[Signature]:
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    out: list[Signature] = []
    for item in items:
        if isinstance(item, Task):
            item = item.s()
        if not isinstance(item, dict) or "task" not in item:
            raise TypeError(f"{name} must be a signature or a list of signatures")
        out.append(Signature.from_dict(item))
    return out


@overload
def task(fun: Callable[..., Any]) -> Task: ...
@overload
def task(*, name: str | None = ..., base: type[Task] | None = ...,
         **options: Any) -> Callable[[Callable[..., Any]], Task]: ...


def task(fun: Callable[..., Any] | None = None, *, name: str | None = None,
         base: type[Task] | None = None, **options: Any) -> Any:
    """Make a function a djq task: ``@task`` or ``@task(bind=True, max_retries=5, ...)``."""

    def create(f: Callable[..., Any]) -> Task:
        cls = base or Task
        opts = dict(options)
        if name:
            opts["name"] = name
        instance = cls(f, **opts)
        existing = registry.get(instance.name)
        if existing is not None and getattr(existing, "__wrapped__", None) is f:
            return existing
        return registry.register(instance)

    if fun is not None and callable(fun) and not options and name is None and base is None:
        return create(fun)
    if fun is not None:
        raise TypeError("@task takes keyword options only: @task(bind=True, ...)")
    return create


shared_task = task
