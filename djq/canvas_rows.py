"""How a chain, a group or a chord becomes task rows, sent all at once.

Every id is fixed up front. The tasks that can run at once are WAITING; the others are
DEFERRED, ``waiting_on`` the task (a chain's previous step) or the chord (its group id)
they follow, and chords get their counter (``djq_chord``). PostgreSQL then moves the
canvas on by itself (the trigger ``djq/sql/functions/djq_canvas_v2.sql``, which reads each
row's flags from its ``canvas`` column).
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import broker, serialization
from ._state import current_request
from .canvas import (
    Signature,
    _as_signature,
    _attach_parent,
    _Composite,
    chain,
    chord,
    group,
)
from .conf import conf
from .publish import Prepared, collector_paused, publish
from .result import AsyncResult, GroupResult, ResultSet
from .registry import registry
from .serialization import encode_arguments

if TYPE_CHECKING:
    from .task import Task, Template

# Options that say where a signature stands in a canvas, not how its task runs; and
# Celery's options for polling a chord (djq does not poll), accepted and ignored.
_PLACEMENT = ("task_id", "group_id", "group_index", "chord", "root_id", "parent_id",
              "using", "link", "link_error", "countdown", "eta",
              "interval", "max_retries", "propagate", "result_cls", "router")


@dataclasses.dataclass(frozen=True)
class _Ctx:
    """Where a node of the canvas starts and what it inherits."""

    after: uuid.UUID | None = None  # the task or chord its first tasks wait on
    args: tuple[Any, ...] = ()  # partial args for its first tasks
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    immutable: bool = False  # its first tasks take no partial args
    group_id: uuid.UUID | None = None  # given to its last tasks (group, chord member)
    parent_id: uuid.UUID | None = None
    root_id: uuid.UUID | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # for every task
    schedule: dict[str, Any] = dataclasses.field(default_factory=dict)  # first tasks
    link: tuple[Signature, ...] = ()  # for its last tasks
    link_error: tuple[Signature, ...] = ()  # for every task


@dataclasses.dataclass(slots=True)
class _Row:
    message: broker.Message
    options: str  # its options, as written when nothing waits on it
    body: tuple[list[Any], dict[str, Any], dict[str, Any]]
    headers: dict[str, Any] | None  # the publish headers of a WAITING row (None: DEFERRED)


def _result_kept(options: str) -> str:
    """The options of a row that a chain step or a chord waits on: the worker keeps its
    result for them, even an ignored one (djq.receivers reads "canvas")."""
    head = '{"canvas":{"keep_result":true}'
    return head + ("}" if options.strip() == "{}" else "," + options.strip()[1:])


class _Plan:
    def __init__(self, using: str | None, root_id: uuid.UUID | None) -> None:
        self.using = using
        self.root_id = root_id
        self.rows: dict[uuid.UUID, _Row] = {}
        self.chords: list[broker.ChordRow] = []

    def root(self, task_id: uuid.UUID) -> uuid.UUID:
        """Every row's root: the one the canvas was sent with, else its first task."""
        if self.root_id is None:
            self.root_id = task_id
        return self.root_id

    def add(self, row: _Row) -> None:
        if row.message.id in self.rows:
            raise ValueError(f"Task id {row.message.id} appears twice in this canvas")
        self.rows[row.message.id] = row

    def set_group(self, ids: Iterable[uuid.UUID], group_id: uuid.UUID) -> None:
        for i in ids:
            row = self.rows[i]
            if row.message.group_id != group_id:
                row.message = dataclasses.replace(row.message, group_id=group_id)

    def join(self, result: Any, exits: list[uuid.UUID]) -> tuple[uuid.UUID | None,
                                                                  tuple[Any, ...]]:
        """What the next step waits on: one task, or a chord over several. An empty
        group has nothing to wait for: the next step starts with ``[]``."""
        if not isinstance(result, ResultSet) and len(exits) == 1:
            return exits[0], ()
        if not exits:
            return None, ([],)
        group_id = getattr(result, "id", None)
        gid = uuid.UUID(str(group_id)) if group_id else uuid.uuid4()
        self.set_group(exits, gid)
        self.chords.append(broker.ChordRow(gid, tuple(exits)))
        return gid, ()

    def finalize(self) -> list[broker.Message]:
        """The rows as sent. Rows are written as if nothing waited on them: the ones a
        chain step or a chord waits on keep their result for it."""
        waited = {m.waiting_on for r in self.rows.values()
                  if (m := r.message).waiting_on and m.canvas != _ON_ERROR}
        waited.update(m for c in self.chords for m in c.members)
        for task_id in waited.intersection(self.rows):
            row = self.rows[task_id]
            row.message = dataclasses.replace(row.message, options=_result_kept(row.options))
        return [r.message for r in self.rows.values()]


def _maybe_uuid(value: Any) -> uuid.UUID | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options every task inherits, placement options)."""
    inherited = {k: v for k, v in options.items() if k not in _PLACEMENT}
    placement = {k: v for k, v in options.items() if k in _PLACEMENT}
    return inherited, placement


def _signatures(value: Any) -> tuple[Signature, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(_as_signature(i) for i in items)


def _schedule(placement: dict[str, Any]) -> dict[str, Any]:
    return {k: placement[k] for k in ("countdown", "eta") if placement.get(k) is not None}


def _entry(ctx: _Ctx, node: Signature) -> tuple[tuple[Any, ...], dict[str, Any], bool]:
    """Partial args, kwargs and immutability for the first tasks of ``node``."""
    if isinstance(node, _Composite):
        if node.immutable:
            return tuple(node["args"]), node.partial_kwargs, True
        return (tuple(ctx.args) + tuple(node["args"]),
                dict(node.partial_kwargs, **ctx.kwargs), ctx.immutable)
    return ctx.args, ctx.kwargs, ctx.immutable


def _compile(node: Any, ctx: _Ctx, plan: _Plan,
             setups: dict[tuple[Task, bool], _TaskSetup] | None = None,
             ) -> tuple[Any, list[uuid.UUID]]:
    """Add the rows of ``node`` to ``plan``; return its result and its last tasks' ids
    (what a following step waits on). ``setups`` are shared by the plain members of a
    group (see _compile_task)."""
    sig = _as_signature(node)
    if isinstance(sig, chord):
        return _compile_chord(sig, ctx, plan)
    if isinstance(sig, group):
        return _compile_group(sig, ctx, plan)
    if isinstance(sig, chain):
        return _compile_chain(sig, ctx, plan)
    return _compile_task(sig, ctx, plan, setups)


class _TaskSetup:
    """What a task's row takes from its signature's options and its context, not from its
    arguments: the same for every member of a group that has no options of its own, so
    worked out once for all of them."""

    def __init__(self, task: Task, options: dict[str, Any], immutable: bool,
                 ctx: _Ctx) -> None:
        own, placement = _split(options)
        opts = dict(own, **ctx.options)
        self.task = task
        self.task_id = _maybe_uuid(placement.get("task_id"))
        self.immutable = immutable
        self.deferred = ctx.after is not None
        schedule = dict(_schedule(placement), **ctx.schedule)
        countdown, eta = schedule.get("countdown"), schedule.get("eta")
        self.flags: dict[str, Any] = {"immutable": immutable}
        if self.deferred and countdown is not None:
            # Counted from when the step becomes ready, as in Celery (where the previous
            # step sends it): the trigger reads it.
            self.flags["countdown"] = float(countdown)
            countdown = None
        links = [*_signatures(placement.get("link")), *ctx.link]
        errbacks = [*_signatures(placement.get("link_error")), *ctx.link_error]
        group_id = ctx.group_id or _maybe_uuid(placement.get("group_id"))
        extra = {k: v for k, v in opts.items() if k not in (
            "queue", "priority", "expires", "ignore_result", "headers")}
        extra.update(parent_id=ctx.after if self.deferred else ctx.parent_id,
                     root_id=ctx.root_id, group_id=group_id)
        task.check_options(extra)
        self._send: dict[str, Any] = {
            "countdown": countdown, "eta": eta, "expires": opts.get("expires"),
            "queue": opts.get("queue"), "priority": opts.get("priority"),
            "link": links or None, "link_error": errbacks or None,
            "ignore_result": opts.get("ignore_result"), "headers": opts.get("headers"),
            "options": extra}

    # Worked out at the first task's row, after its arguments are checked, in the order
    # a single apply_async checks things.
    @functools.cached_property
    def template(self) -> Template:
        return self.task.call_template(**self._send)

    @functools.cached_property
    def canvas(self) -> str:
        """The flags the trigger reads, for the row's ``canvas`` column."""
        return serialization.dumps(self.flags)


def _compile_task(sig: Signature, ctx: _Ctx, plan: _Plan,
                  setups: dict[tuple[Task, bool], _TaskSetup] | None = None,
                  ) -> tuple[Any, list[uuid.UUID]]:
    options = sig["options"]
    immutable = sig.immutable or ctx.immutable
    if setups is None or options:
        setup = _TaskSetup(sig.type, options, immutable, ctx)
    else:
        key = (sig.type, sig.immutable)
        setup = setups.get(key) or setups.setdefault(
            key, _TaskSetup(key[0], options, immutable, ctx))
    task = setup.task
    task_id = setup.task_id or uuid.uuid4()
    if immutable:
        args, kwargs = sig.args, sig.kwargs
    else:
        args, kwargs = [*ctx.args, *sig["args"]], dict(sig["kwargs"], **ctx.kwargs)
    # A step that gets the previous result is checked with a stand-in for it.
    checked = [None, *args] if setup.deferred and not immutable else args
    task.checked_arguments(checked, kwargs)
    template = setup.template
    args_json, kwargs_json = encode_arguments(args, kwargs)
    message = template.message(
        task_id, args_json, kwargs_json, root_id=plan.root(task_id),
        status=broker.DEFERRED if setup.deferred else broker.WAITING, waiting_on=ctx.after,
        canvas=setup.canvas)
    headers = None if setup.deferred else template.headers(task_id, args, kwargs)
    plan.add(_Row(message, template.options_json, (args, kwargs, {}), headers))
    return AsyncResult(str(task_id), task_name=task.name, using=plan.using), [task_id]


def _compile_group(g: group, ctx: _Ctx, plan: _Plan) -> tuple[Any, list[uuid.UUID]]:
    own, placement = _split(g.options)
    if placement.get("link"):
        raise TypeError("Cannot add link to group: use a chord")
    gid = _maybe_uuid(placement.get("task_id")) or uuid.uuid4()
    args, kwargs, immutable = _entry(ctx, g)
    base = dataclasses.replace(
        ctx, args=args, kwargs=kwargs, immutable=immutable,
        group_id=ctx.group_id or gid, link=(),
        options=dict(own, **ctx.options),
        schedule=dict(_schedule(placement), **ctx.schedule),
        link_error=(*_signatures(placement.get("link_error")), *ctx.link_error),
    )
    results: list[Any] = []
    exits: list[uuid.UUID] = []
    setups: dict[tuple[Task, bool], _TaskSetup] = {}
    for i, member in enumerate(g.tasks):
        if i == 0 and ctx.link:  # a group's link goes to its first task, immutable
            link = tuple(s.clone().set(immutable=True) for s in ctx.link)  # (as in Celery)
            result, ids = _compile(member, dataclasses.replace(base, link=link), plan)
        else:
            result, ids = _compile(member, base, plan, setups)
        if isinstance(member, group) and isinstance(result, GroupResult):
            results.extend(result.results)  # nested groups are one group, as in Celery
        else:
            results.append(result)
        exits.extend(ids)
    return GroupResult(str(gid), results, using=plan.using), exits


def _compile_chain(c: chain, ctx: _Ctx, plan: _Plan) -> tuple[Any, list[uuid.UUID]]:
    own, placement = _split(c.options)
    steps = c.tasks
    if not steps:
        raise ValueError("Cannot send an empty chain")
    if placement.get("task_id"):  # the chain's id is its last task's
        steps[-1] = steps[-1].clone().set(task_id=placement["task_id"])
    args, kwargs, immutable = _entry(ctx, c)
    options = dict(own, **ctx.options)
    errbacks = (*_signatures(placement.get("link_error")), *ctx.link_error)
    links = (*_signatures(placement.get("link")), *ctx.link)
    after = ctx.after
    prefix: tuple[Any, ...] = ()
    prev: Any = None
    result: Any = None
    exits: list[uuid.UUID] = []
    for i, step in enumerate(steps):
        first, last = i == 0, i == len(steps) - 1
        step_ctx = _Ctx(
            after=after, args=args if first else prefix, kwargs=kwargs if first else {},
            immutable=immutable if first else False,
            group_id=ctx.group_id if last else None,
            parent_id=ctx.parent_id if first else None, root_id=ctx.root_id,
            options=options,
            schedule=dict(_schedule(placement), **ctx.schedule) if first else {},
            link=links if last else (), link_error=errbacks,
        )
        result, exits = _compile(step, step_ctx, plan)
        _attach_parent(result, prev)
        if not last:
            after, prefix = plan.join(result, exits)
        prev = result
    return result, exits


def _one_result_per_chain(header: group) -> group:
    """As in Celery, a chain in a chord's header gives the chord one result, also when it
    ends in a group (the list of that group's results; a group nested in the header
    directly is one group with it). Such a chain's group becomes a chord of its own,
    whose callback (``celery.accumulate``) returns that list."""
    tasks = header.tasks
    members = [_one_result(m) for m in tasks]
    if all(a is b for a, b in zip(members, tasks)):
        return header
    header = header.clone()  # type: ignore[assignment]
    header["kwargs"]["tasks"] = members
    return header


def _one_result(member: Signature) -> Signature:
    if isinstance(member, group):
        return _one_result_per_chain(member)
    if not isinstance(member, chain) or not member.tasks:
        return member
    *steps, last = member.tasks
    if not isinstance(last, group):
        return member
    sig = member.clone()
    sig["kwargs"]["tasks"] = [
        *steps, chord(last, Signature("celery.accumulate", kwargs={"index": 0}))]
    return sig


def _compile_chord(ch: chord, ctx: _Ctx, plan: _Plan) -> tuple[Any, list[uuid.UUID]]:
    own, placement = _split(ch.options)
    body = ch.body
    if body is None:
        raise ValueError("chord has no body: chord(header)(callback)")
    if placement.get("task_id"):  # the chord's id is its body's
        body = body.clone().set(task_id=placement["task_id"])
    args, kwargs, immutable = _entry(ctx, ch)
    options = dict(own, **ctx.options)
    header_ctx = dataclasses.replace(
        ctx, args=args, kwargs=kwargs, immutable=immutable, group_id=None, link=(),
        options=options, schedule=dict(_schedule(placement), **ctx.schedule))
    header_result, members = _compile_group(_one_result_per_chain(ch.header), header_ctx,
                                             plan)
    gid = uuid.UUID(header_result.id)
    after: uuid.UUID | None = gid if members else None
    body_ctx = _Ctx(
        after=after, args=() if members else ([],), group_id=ctx.group_id,
        parent_id=None if members else ctx.parent_id, root_id=ctx.root_id, options=options,
        link=(*_signatures(placement.get("link")), *ctx.link),
        link_error=(*_signatures(placement.get("link_error")), *ctx.link_error),
    )
    result, exits = _compile(body, body_ctx, plan)
    if members:
        plan.set_group(members, gid)
        firsts = [i for i, r in plan.rows.items() if r.message.waiting_on == gid]
        plan.chords.append(broker.ChordRow(gid, tuple(members),
                                           firsts[0] if len(firsts) == 1 else None))
        for callback_id in firsts:
            _add_chord_errbacks(plan, plan.rows[callback_id])
    _attach_parent(result, header_result)
    return result, exits


# The flags of an errback row: it starts only if the row it waits on fails without
# running, and takes no argument from it (see djq_canvas_v2.sql).
_ON_ERROR = '{"immutable":true,"on_error":true}'


def _add_chord_errbacks(plan: _Plan, callback: _Row) -> None:
    """As in Celery, a chord callback that fails with ChordError (a member failed) has
    its errbacks called, although it never runs: a ``djq.chord_errbacks`` row waits on it
    for that, and the trigger starts it then only (and drops it otherwise)."""
    if '"link_error"' not in callback.options:
        return
    m = callback.message
    task = registry["djq.chord_errbacks"]
    template = task.call_template(queue=m.queue, priority=m.priority, ignore_result=True,
                                  options={"parent_id": m.id, "root_id": m.root_id})
    args_json, kwargs_json = encode_arguments([str(m.id)], {})
    plan.add(_Row(template.message(uuid.uuid4(), args_json, kwargs_json, root_id=m.root_id,
                                   status=broker.DEFERRED, waiting_on=m.id,
                                   canvas=_ON_ERROR), template.options_json,
                  ([str(m.id)], {}, {}), None))


def send(node: _Composite, args: Any, kwargs: dict[str, Any] | None,
          options: dict[str, Any]) -> Any:
    """Apply a chain, group or chord: every row and chord counter at once
    (:func:`djq.broker.enqueue_canvas`)."""
    if conf.task_always_eager:
        return node.apply(args, kwargs, **options)
    options = dict(options)
    using = options.pop("using", None)
    parent_id = _maybe_uuid(options.pop("parent_id", None))
    root_id = _maybe_uuid(options.pop("root_id", None))
    current = current_request()
    if parent_id is None and current is not None and current.id:
        # Sent from inside a task: its children, as in Celery.
        parent_id = _maybe_uuid(current.id)
        root_id = root_id or _maybe_uuid(current.root_id or current.id)
    task_id = options.pop("task_id", None)
    group_id = options.pop("group_id", None)
    if isinstance(node, group) and task_id is None:
        task_id, group_id = group_id, None
    if task_id is not None:
        node = node.clone()  # type: ignore[assignment]
        node.set(task_id=str(task_id))
    inherited, placement = _split(options)
    ctx = _Ctx(
        args=tuple(args or ()), kwargs=dict(kwargs or {}),
        group_id=_maybe_uuid(group_id), parent_id=parent_id, root_id=root_id,
        options=inherited, schedule=_schedule(placement),
        link=_signatures(placement.get("link")),
        link_error=_signatures(placement.get("link_error")),
    )
    if isinstance(node, group) and ctx.link:
        raise TypeError("Cannot add link to group: use a chord")
    plan = _Plan(using, root_id)
    with collector_paused():
        result, _ = _compile(node, ctx, plan)
        messages = plan.finalize()
    if not messages:
        return result  # an empty group: nothing to send
    calls = [Prepared(r.message, r.body, r.headers) for r in plan.rows.values()]
    publish(calls, lambda rows: broker.enqueue_canvas(rows, plan.chords, using=using))
    return result
