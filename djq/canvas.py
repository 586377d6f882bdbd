"""Signatures and the canvas: ``chain``, ``group`` and ``chord``, with Celery's semantics.

A :class:`Signature` is a ``dict`` (so it serialises to JSON as itself, and
:func:`signature` turns the JSON back into the right class), as in Celery.

Applying a chain, a group or a chord writes all of its task rows at once, in one
transaction (:func:`djq.broker.enqueue_canvas`), with their ids fixed up front: the steps
that can run now are WAITING, the others DEFERRED and ``waiting_on`` the task (or the
chord) they follow. From then on PostgreSQL moves the canvas on by itself (the canvas
trigger, ``djq/sql/functions/djq_canvas_v2.sql``): no worker code, no process polling, and
a crash anywhere leaves a consistent state.

Errbacks are called as in Celery: those of the task that failed (a chain's own errbacks
are linked to each of its steps), not those of the steps after it, which never run; and
those of a chord's callback when it fails with ``ChordError``, although it never runs
(with its request, the ``ChordError`` and no traceback; old style: with its id).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .options import check_call_options
from .registry import registry
from .result import AsyncResult, GroupResult

if TYPE_CHECKING:
    from .task import Task

_S = TypeVar("_S", bound="Signature")


class Signature(dict):  # type: ignore[type-arg]
    """A task name with arguments and options, to be called or sent later."""

    #: ``subtask_type`` -> class, so a signature decoded from JSON gets its class back.
    TYPES: ClassVar[dict[str, type[Signature]]] = {}

    _type: Task | None

    def __init__(
        self,
        task: str | Task | dict[str, Any] | None = None,
        args: Any = None,
        kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        type: Task | None = None,
        subtask_type: str | None = None,
        immutable: bool = False,
        **ex: Any,
    ) -> None:
        if isinstance(task, dict) and not isinstance(task, str):
            super().__init__(task)  # from a dict, e.g. one decoded from JSON
            self.setdefault("args", [])
            self.setdefault("kwargs", {})
            self.setdefault("options", {})
            self.setdefault("immutable", False)
            self.setdefault("subtask_type", None)
            self._type = None
            return
        name: str
        if task is not None and not isinstance(task, str):
            self._type = task
            name = task.name
        else:
            self._type = type
            name = task if task is not None else ""
        options = dict(options or {}, **ex)
        check_call_options(options)  # a bad option raises here, not when it is sent
        super().__init__(
            task=name,
            args=list(args or ()),
            kwargs=dict(kwargs or {}),
            options=options,
            subtask_type=subtask_type,
            immutable=immutable,
        )

    @classmethod
    def register_type(cls, name: str | None = None) -> Callable[[type[_S]], type[_S]]:
        def register(klass: type[_S]) -> type[_S]:
            Signature.TYPES[name or klass.__name__] = klass
            return klass

        return register

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Signature:
        """A signature of the right class (chain, group, chord or a task) from a dict."""
        typ = d.get("subtask_type")
        target = Signature.TYPES.get(typ) if isinstance(typ, str) else None
        if isinstance(d, Signature) and (target is None or isinstance(d, target)):
            return d
        if target is not None:
            return target._from_dict(d)
        return Signature(d)

    # -- attributes Celery users reach for --------------------------------------------
    @property
    def task(self) -> str:
        return str(self["task"])

    @property
    def name(self) -> str:
        return str(self["task"])

    @property
    def args(self) -> list[Any]:
        return list(self["args"])

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self["kwargs"])

    @property
    def options(self) -> dict[str, Any]:
        return dict(self["options"])

    @property
    def immutable(self) -> bool:
        return bool(self.get("immutable"))

    @property
    def subtask_type(self) -> str | None:
        typ = self.get("subtask_type")
        return None if typ is None else str(typ)

    @property
    def id(self) -> str | None:
        task_id = self["options"].get("task_id")
        return None if task_id is None else str(task_id)

    @property
    def type(self) -> Task:
        """The task; for a name this process has not registered, a stand-in that can
        still be sent (a worker that knows the name runs it)."""
        if getattr(self, "_type", None) is None:
            self._type = registry.get(self.task) or registry.unregistered(self.task)
        assert self._type is not None
        return self._type

    # -- building ---------------------------------------------------------------------
    def clone(self, args: Any = None, kwargs: dict[str, Any] | None = None,
              **opts: Any) -> Signature:
        """A deep copy, with partial arguments prepended and kwargs and options merged
        (the new ones winning). Frozen ids are kept."""
        sig = Signature.from_dict(copy.deepcopy(dict(self)))
        sig._type = getattr(self, "_type", None)
        if args or kwargs or opts:
            new_args, new_kwargs, new_opts = self._merge(args, kwargs, opts)
            sig._set_partial(new_args, new_kwargs)
            sig["options"] = new_opts
        return sig

    def _set_partial(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        self["args"], self["kwargs"] = list(args), kwargs

    def _merge(self, args: Any = None, kwargs: dict[str, Any] | None = None,
               options: dict[str, Any] | None = None) -> tuple[list[Any], dict[str, Any],
                                                             dict[str, Any]]:
        opts = dict(self["options"], **(options or {}))
        if self.immutable:
            return list(self["args"]), dict(self["kwargs"]), opts
        merged_args = list(args or ()) + list(self["args"])
        merged_kwargs = dict(self["kwargs"], **(kwargs or {}))
        return merged_args, merged_kwargs, opts

    def replace(self, args: Any = None, kwargs: dict[str, Any] | None = None,
                options: dict[str, Any] | None = None) -> Signature:
        """A copy with ``args``, ``kwargs`` or ``options`` replaced (not merged)."""
        sig = self.clone()
        if args is not None:
            sig["args"] = list(args)
        if kwargs is not None:
            sig["kwargs"] = dict(kwargs)
        if options is not None:
            sig["options"] = dict(options)
        return sig

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Set options in place; returns the signature."""
        check_call_options(options)
        if immutable is not None:
            self["immutable"] = immutable
        self["options"].update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self["immutable"] = immutable

    def _append_option(self, key: str, value: Signature) -> Signature:
        items = self["options"].get(key)
        if items is None:
            items = self["options"][key] = []
        elif not isinstance(items, list):
            items = self["options"][key] = [items]
        if value not in items:
            items.append(value)
        return value

    def link(self, callback: Signature) -> Signature:
        """Add a callback run with this task's result when it succeeds; returns it."""
        return self._append_option("link", maybe_signature(callback) or callback)

    def link_error(self, errback: Signature) -> Signature:
        """Add an errback run when this task fails; returns the errback."""
        return self._append_option("link_error", maybe_signature(errback) or errback)

    def on_error(self, errback: Signature) -> Signature:
        """:meth:`link_error` that returns this signature, so that it chains:
        ``add.s(2, 2).on_error(log_error.s()).delay()``."""
        self.link_error(errback)
        return self

    def flatten_links(self) -> list[Signature]:
        """This signature and every callback linked to it, recursively."""
        out: list[Signature] = [self]
        for link in self["options"].get("link") or ():
            out.extend(Signature.from_dict(link).flatten_links())
        return out

    def freeze(self, _id: str | None = None, group_id: str | None = None,
               chord: Any = None, root_id: str | None = None, parent_id: str | None = None,
               group_index: int | None = None) -> Any:
        """Fix the task id now (keeping one already fixed) and return its result."""
        opts = self["options"]
        task_id = opts.get("task_id") or _id or str(uuid.uuid4())
        opts["task_id"] = str(task_id)
        if group_id:
            opts["group_id"] = str(group_id)
        return AsyncResult(str(task_id), task_name=self.task)

    def AsyncResult(self, task_id: str) -> AsyncResult:
        return AsyncResult(task_id, task_name=self.task)

    # -- composing ----------------------------------------------------------------------
    def __or__(self, other: Any) -> Signature:
        if isinstance(other, chain):
            return chain(self, *other.tasks)  # task | chain -> chain
        if isinstance(other, group):
            return chain(self, _maybe_unroll(other))  # task | group -> chain
        if isinstance(other, Signature):
            return chain(self, other)  # task | task -> chain
        return NotImplemented

    # -- running ----------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task inline, in this process."""
        merged_args, merged_kwargs, _ = self._merge(args, kwargs)
        return self.type(*merged_args, **merged_kwargs)

    def __invert__(self) -> Any:
        return self.apply_async().get()

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Any = None, kwargs: dict[str, Any] | None = None,
                    **options: Any) -> Any:
        """Send the task, with partial ``args`` prepended and ``kwargs``/options merged."""
        merged_args, merged_kwargs, merged_opts = self._merge(args, kwargs, options)
        return self.type.apply_async(merged_args, merged_kwargs, **merged_opts)

    def apply(self, args: Any = None, kwargs: dict[str, Any] | None = None,
              **options: Any) -> Any:
        merged_args, merged_kwargs, merged_opts = self._merge(args, kwargs, options)
        return self.type.apply(merged_args, merged_kwargs, **merged_opts)

    def __repr__(self) -> str:
        args = ", ".join([repr(a) for a in self["args"]]
                         + [f"{k}={v!r}" for k, v in self["kwargs"].items()])
        return f"{self['task']}({args}){'!' if self.immutable else ''}"

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        sig = Signature.from_dict(copy.deepcopy(dict(self), memo))
        sig._type = getattr(self, "_type", None)
        return sig

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> Signature:
        return Signature(d)


def _maybe_unroll(g: group) -> Signature:
    """A group of one task is that task (Celery's ``maybe_unroll_group``)."""
    tasks = g.tasks
    if len(tasks) == 1:
        return tasks[0].clone(**{k: v for k, v in g.options.items() if k != "task_id"})
    return g


class _Composite(Signature):
    """What chain, group and chord share: partial arguments of their own (``args``, and
    ``kwargs["kwargs"]``) for the tasks they start with, and being sent as a whole."""

    def _set_partial(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        self["args"] = list(args)
        self["kwargs"]["kwargs"] = kwargs

    def _merge(self, args: Any = None, kwargs: dict[str, Any] | None = None,
               options: dict[str, Any] | None = None) -> tuple[list[Any], dict[str, Any],
                                                             dict[str, Any]]:
        opts = dict(self["options"], **(options or {}))
        own_kwargs = dict(self["kwargs"].get("kwargs") or {})
        if self.immutable:
            return list(self["args"]), own_kwargs, opts
        return list(args or ()) + list(self["args"]), dict(own_kwargs, **(kwargs or {})), opts

    @property
    def partial_kwargs(self) -> dict[str, Any]:
        return dict(self["kwargs"].get("kwargs") or {})

    @property
    def type(self) -> Task:
        # As an errback, a canvas is sent with the failed task's id (one argument).
        def run(task_id: Any) -> None:
            raise TypeError(f"{self.task} runs only as a whole: send it")

        return registry.stand_in(self.task, run)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Any = None, kwargs: dict[str, Any] | None = None,
                    **options: Any) -> Any:
        """Send the whole canvas at once; returns its result at once."""
        from .canvas_rows import send

        return send(self, args, kwargs, options)


@Signature.register_type("chain")
class chain(_Composite):
    """Tasks run one after the other, each result prepended to the next task's args:
    ``chain(add.s(2, 2), mul.s(8))`` or ``add.s(2, 2) | mul.s(8)``.

    As in Celery, a group followed by another step becomes a chord, and a chord followed
    by a task takes it into its body.
    """

    def __init__(self, *tasks: Any, **options: Any) -> None:
        if len(tasks) == 1 and not isinstance(tasks[0], dict) and isinstance(
                tasks[0], Iterable):
            tasks = tuple(tasks[0])
        steps: list[Signature] = []
        for item in tasks:
            _chain_append(steps, _as_signature(item))
        Signature.__init__(self, "celery.chain", (), {"tasks": steps}, options=options,
                           subtask_type="chain")

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> Signature:
        kwargs = d.get("kwargs") or {}
        sig = chain(*(kwargs.get("tasks") or ()), **(d.get("options") or {}))
        sig["args"] = list(d.get("args") or ())
        if "kwargs" in kwargs:
            sig["kwargs"]["kwargs"] = dict(kwargs["kwargs"] or {})
        sig["immutable"] = bool(d.get("immutable"))
        return sig

    @property
    def tasks(self) -> list[Signature]:
        return list(self["kwargs"]["tasks"])

    def __or__(self, other: Any) -> Signature:
        if isinstance(other, Signature):
            sig = self.clone()
            assert isinstance(sig, chain)
            if isinstance(other, chain):
                for step in other.tasks:
                    _chain_append(sig["kwargs"]["tasks"], step)
            else:
                _chain_append(sig["kwargs"]["tasks"], other)
            return sig
        return NotImplemented

    def link(self, callback: Signature) -> Signature:
        """Link ``callback`` to the last task (it gets the chain's result)."""
        tasks = self["kwargs"]["tasks"]
        if not tasks:
            return super().link(callback)
        return tasks[-1].link(callback)  # type: ignore[no-any-return]

    def link_error(self, errback: Signature) -> Signature:
        """Link ``errback`` to every task of the chain."""
        for step in self["kwargs"]["tasks"]:
            step.link_error(errback.clone() if isinstance(errback, Signature) else errback)
        return errback

    def freeze(self, _id: str | None = None, group_id: str | None = None,
               chord: Any = None, root_id: str | None = None, parent_id: str | None = None,
               group_index: int | None = None) -> Any:
        """Fix every task id now; returns the last task's result (``.parent`` leads back
        through the chain)."""
        tasks = self["kwargs"]["tasks"]
        if not tasks:
            return None
        if _id is None:
            _id = self["options"].get("task_id")
        prev: Any = None
        result: Any = None
        for i, step in enumerate(tasks):
            last = i == len(tasks) - 1
            result = step.freeze(_id if last else None, group_id=group_id if last else None)
            _attach_parent(result, prev)
            prev = result
        return result

    def apply(self, args: Any = None, kwargs: dict[str, Any] | None = None,
              **options: Any) -> Any:
        """Run every step inline, in order (``task_always_eager``)."""
        fargs, fkwargs, _ = self._merge(args, kwargs)
        last: Any = None
        for step in self.tasks:
            res = step.clone(fargs, fkwargs).apply((last.get(),) if last is not None else ())
            _attach_parent(res, last)
            last, fargs, fkwargs = res, [], {}
        return last

    def __repr__(self) -> str:
        if not self.tasks:
            return "chain()"
        return " | ".join(repr(t) for t in self.tasks)


_chain = chain


def _chain_append(steps: list[Signature], other: Signature) -> None:
    """Celery's upgrades when a chain grows by ``other``."""
    if isinstance(other, chain) and not other.options and not other.args:
        for step in other.tasks:
            _chain_append(steps, step)
        return
    if isinstance(other, group):
        other = _maybe_unroll(other)
    last = steps[-1] if steps else None
    if isinstance(other, Signature) and not isinstance(other, (group, chain)):
        if isinstance(last, group):
            steps[-1] = chord(last, body=other)  # group | task -> chord
            return
        if isinstance(last, chord) and last.body is not None:
            body = last.body
            steps[-1] = last = last.clone()  # the caller's chord stays as it was
            last["kwargs"]["body"] = body | other  # chord | task -> into the body
            return
    steps.append(other)


@Signature.register_type("group")
class group(_Composite):
    """Tasks run in parallel: ``group(add.s(i, i) for i in range(10))``; applying it
    returns a :class:`~djq.result.GroupResult`. Nested groups run as one group."""

    def __init__(self, *tasks: Any, **options: Any) -> None:
        items: Iterable[Any] = tasks
        if len(tasks) == 1:
            only = tasks[0]
            if isinstance(only, group):
                items = only.tasks
            elif isinstance(only, dict):
                items = [only]
            elif isinstance(only, Iterable):
                items = list(only)
        Signature.__init__(self, "celery.group", (),
                           {"tasks": [_as_signature(t) for t in items]}, options=options,
                           subtask_type="group")

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> Signature:
        kwargs = d.get("kwargs") or {}
        sig = group(list(kwargs.get("tasks") or ()), **(d.get("options") or {}))
        sig["args"] = list(d.get("args") or ())
        if "kwargs" in kwargs:
            sig["kwargs"]["kwargs"] = dict(kwargs["kwargs"] or {})
        sig["immutable"] = bool(d.get("immutable"))
        return sig

    @property
    def tasks(self) -> list[Signature]:
        return list(self["kwargs"]["tasks"])

    def __len__(self) -> int:  # dict's len would count the keys
        return len(self["kwargs"]["tasks"])

    def __iter__(self) -> Any:
        return iter(self.tasks)

    def __bool__(self) -> bool:
        return True

    def __or__(self, other: Any) -> Signature:
        if isinstance(other, Signature):
            return chord(self, body=other)  # group | task -> chord
        return NotImplemented

    def link(self, callback: Signature) -> Signature:
        """As in Celery: linked to the first task only, immutable (it cannot get the
        group's results: use a chord for that)."""
        tasks = self["kwargs"]["tasks"]
        sig = maybe_signature(callback)
        assert sig is not None
        sig = sig.clone().set(immutable=True)
        if not tasks:
            return super().link(sig)
        return tasks[0].link(sig)  # type: ignore[no-any-return]

    def link_error(self, errback: Signature) -> Signature:
        """Link ``errback`` to every task of the group."""
        for task in self["kwargs"]["tasks"]:
            task.link_error(errback.clone() if isinstance(errback, Signature) else errback)
        return errback

    def freeze(self, _id: str | None = None, group_id: str | None = None,
               chord: Any = None, root_id: str | None = None, parent_id: str | None = None,
               group_index: int | None = None) -> Any:
        """Fix the group id and every task id now; returns the ``GroupResult``."""
        opts = self["options"]
        gid = opts.get("task_id") or _id or str(uuid.uuid4())
        opts["task_id"] = str(gid)
        return GroupResult(str(gid), [t.freeze() for t in self["kwargs"]["tasks"]])

    def apply(self, args: Any = None, kwargs: dict[str, Any] | None = None,
              **options: Any) -> Any:
        """Run every task inline (``task_always_eager``)."""
        fargs, fkwargs, _ = self._merge(args, kwargs)
        gid = self["options"].get("task_id") or str(uuid.uuid4())
        return GroupResult(str(gid), [t.clone(fargs, fkwargs).apply() for t in self.tasks])

    def __repr__(self) -> str:
        return f"group([{', '.join(repr(t) for t in self.tasks)}])"


@Signature.register_type("chord")
class chord(_Composite):
    """A group whose results, in order, go to one callback once every task of it has
    ended: ``chord([add.s(i, i) for i in range(10)], tsum.s())`` or
    ``chord(header)(callback)``. A failed task fails the callback with ``ChordError``,
    and the callback's errbacks are called, as in Celery.

    The counting is PostgreSQL's: each task that ends counts the chord down, and the one
    that reaches zero starts the callback, exactly once.
    """

    def __init__(self, header: Any, body: Any = None, task: str = "celery.chord",
                 args: Any = None, kwargs: dict[str, Any] | None = None,
                 **options: Any) -> None:
        head = header if isinstance(header, group) else group(
            header if isinstance(header, (list, tuple, dict)) or not isinstance(
                header, Iterable) else list(header))
        Signature.__init__(
            self, task, list(args or ()),
            {"kwargs": dict(kwargs or {}), "header": head,
             "body": _as_signature(body) if body is not None else None},
            options=options, subtask_type="chord")

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> Signature:
        kwargs = d.get("kwargs") or {}
        header = kwargs.get("header") or []
        if isinstance(header, dict) and not isinstance(header, Signature):
            header = Signature.from_dict(header)
        sig = chord(header, kwargs.get("body"), args=d.get("args"),
                    kwargs=kwargs.get("kwargs"), **(d.get("options") or {}))
        sig["immutable"] = bool(d.get("immutable"))
        return sig

    @property
    def header(self) -> group:
        head = self["kwargs"]["header"]
        assert isinstance(head, group)
        return head

    @property
    def tasks(self) -> list[Signature]:
        return self.header.tasks

    @property
    def body(self) -> Signature | None:
        body = self["kwargs"].get("body")
        return None if body is None else Signature.from_dict(body)

    def __call__(self, body: Any = None, **options: Any) -> Any:
        """``chord(header)(callback)``: send it with this callback."""
        return self.apply_async((), {"body": body} if body is not None else {}, **options)

    def apply_async(self, args: Any = None, kwargs: dict[str, Any] | None = None,
                    **options: Any) -> Any:
        kwargs = dict(kwargs or {})
        body = kwargs.pop("body", None)
        sig: chord = self
        if body is not None:
            clone = self.clone()
            assert isinstance(clone, chord)
            clone["kwargs"]["body"] = _as_signature(body)
            sig = clone
        from .canvas_rows import send

        return send(sig, args, kwargs, options)

    def __or__(self, other: Any) -> Signature:
        if isinstance(other, group):
            other = _maybe_unroll(other)
        if isinstance(other, Signature) and not isinstance(other, (group, chain)) and (
                self.body is not None):
            sig = self.clone()
            sig["kwargs"]["body"] = self.body | other  # chord | task -> into the body
            return sig
        return super().__or__(other)

    def link(self, callback: Signature) -> Signature:
        """Link ``callback`` to the body (it gets the chord's result)."""
        body = self.body
        if body is None:
            return super().link(callback)
        self["kwargs"]["body"] = body
        return body.link(callback)

    def link_error(self, errback: Signature) -> Signature:
        body = self.body
        if body is None:
            return super().link_error(errback)
        self["kwargs"]["body"] = body
        return body.link_error(errback)

    def freeze(self, _id: str | None = None, group_id: str | None = None,
               chord: Any = None, root_id: str | None = None, parent_id: str | None = None,
               group_index: int | None = None) -> Any:
        """Fix every id now; returns the body's result (its ``.parent`` is the header's
        ``GroupResult``)."""
        header_result = self.header.freeze()
        body = self.body
        if body is None:
            return header_result
        self["kwargs"]["body"] = body
        result = body.freeze(_id or self["options"].get("task_id"), group_id=group_id)
        _attach_parent(result, header_result)
        return result

    def apply(self, args: Any = None, kwargs: dict[str, Any] | None = None,
              propagate: bool = True, body: Any = None, **options: Any) -> Any:
        """Run the header inline, then the body with its results (``task_always_eager``)."""
        callback = _as_signature(body) if body is not None else self.body
        if callback is None:
            raise ValueError("chord has no body")
        fargs, fkwargs, _ = self._merge(args, kwargs)
        header_result = self.header.clone(fargs, fkwargs).apply()
        result = callback.apply((header_result.get(propagate=propagate),))
        _attach_parent(result, header_result)
        return result

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {self.body!r})"


def xmap(task: Any, it: Iterable[Any], **options: Any) -> Signature:
    """``Task.map(it)``: one task that calls ``task(item)`` for each item and returns
    the list of results (Celery's ``celery.map``)."""
    return Signature("celery.map", (), {"task": _task_signature(task), "it": list(it)},
                     options=options, immutable=True)


def xstarmap(task: Any, it: Iterable[Any], **options: Any) -> Signature:
    """``Task.starmap(it)``: one task that calls ``task(*item)`` for each item
    (Celery's ``celery.starmap``)."""
    return Signature("celery.starmap", (),
                     {"task": _task_signature(task), "it": [list(i) for i in it]},
                     options=options, immutable=True)


def _task_signature(task: Any) -> Signature:
    sig = task.s() if registry.is_task(task) else maybe_signature(task)
    if sig is None:
        raise TypeError(f"Expected a task or a signature, not {type(task).__name__}")
    return sig


@Signature.register_type("chunks")
class chunks(Signature):
    """``Task.chunks(it, n)``: ``it`` split into parts of ``n`` argument tuples, each
    part one ``starmap`` task, sent as one group (Celery's). Calling it sends it; its
    result is a :class:`~djq.result.GroupResult` whose ``get()`` is a list of lists."""

    def __init__(self, task: Any, it: Iterable[Any], n: int, **options: Any) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"chunks: n must be a positive integer, not {n!r}")
        Signature.__init__(self, "celery.chunks", (),
                           {"task": _task_signature(task), "it": [list(i) for i in it],
                            "n": n}, options=options, immutable=True, subtask_type="chunks")

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> Signature:
        kwargs = d.get("kwargs") or {}
        return chunks(Signature.from_dict(kwargs["task"]), kwargs.get("it") or (),
                      int(kwargs.get("n") or 1), **(d.get("options") or {}))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(**kwargs)

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async()

    def apply_async(self, args: Any = None, kwargs: dict[str, Any] | None = None,
                    **options: Any) -> Any:
        return self.group().apply_async(**dict(self["options"], **options))

    def group(self) -> group:
        """The group of ``starmap`` tasks this sends."""
        task = Signature.from_dict(self["kwargs"]["task"])
        items = list(self["kwargs"]["it"])
        n = int(self["kwargs"]["n"])
        return group([xstarmap(task, items[i:i + n]) for i in range(0, len(items), n)])


def signature(varies: str | dict[str, Any] | Signature, *args: Any, **kwargs: Any) -> Signature:
    """Build a signature from a task name (``djq.signature("app.tasks.add", args=(2, 2))``)
    or turn a dict (e.g. one decoded from JSON) back into one of the right class."""
    if isinstance(varies, dict):
        if isinstance(varies, Signature):
            return varies.clone()
        return Signature.from_dict(varies)
    return Signature(varies, *args, **kwargs)


def maybe_signature(d: Any) -> Signature | None:
    if d is None:
        return None
    if isinstance(d, dict):
        return Signature.from_dict(d)
    raise TypeError(f"Not a signature: {d!r}")


subtask = signature


def _as_signature(item: Any) -> Signature:
    if isinstance(item, dict):  # first: the common case
        return Signature.from_dict(item)
    if registry.is_task(item):
        return item.s()  # type: ignore[no-any-return]
    raise TypeError(f"Not a signature: {item!r}")


def _attach_parent(result: Any, parent: Any) -> None:
    """Make ``parent`` the parent of the earliest result that ``result`` leads back to."""
    if result is None or parent is None:
        return
    node = result
    while getattr(node, "_parent", None) is not None:
        node = node._parent
    if node is not parent:
        node._parent = parent
