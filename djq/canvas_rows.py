"""How a chain, a group or a chord becomes task rows, sent in one statement.

Every id is fixed up front. The tasks that can run at once are WAITING; the others are
DEFERRED, ``waiting_on`` the task (a chain's previous step) or the chord (its group id)
they follow, and chords get their counter (``djq_chord``). PostgreSQL then moves the
canvas on by itself (the trigger of migration ``0004_canvas``).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from typing import Any

from . import broker, serialization, signals
from .canvas import (
    Signature,
    _as_signature,
    _attach_parent,
    _Composite,
    chain,
    chord,
    group,
)

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


@dataclasses.dataclass
class _Row:
    message: broker.Message
    canvas: dict[str, Any]
    publish: tuple[str, Any, dict[str, Any]] | None  # (name, body, headers) if WAITING


class _Plan:
    def __init__(self, using: str | None) -> None:
        self.using = using
        self.rows: dict[uuid.UUID, _Row] = {}
        self.chords: list[broker.ChordRow] = []

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
        from .result import ResultSet

        if not isinstance(result, ResultSet) and len(exits) == 1:
            return exits[0], ()
        if not exits:
            return None, ([],)
        group_id = getattr(result, "id", None)
        gid = uuid.UUID(str(group_id)) if group_id else uuid.uuid4()
        self.set_group(exits, gid)
        self.chords.append(broker.ChordRow(gid, tuple(exits)))
        return gid, ()

    def finalize(self, root_id: uuid.UUID | None) -> list[broker.Message]:
        waited = {r.message.waiting_on for r in self.rows.values()}
        waited.update(m for c in self.chords for m in c.members)
        root = root_id or next(iter(self.rows))
        out = []
        for row in self.rows.values():
            m = row.message
            # "canvas" first, so the trigger reads these flags as text (see 0004_canvas).
            flags = dict(row.canvas, keep_result=m.id in waited)
            head = '{"canvas":' + serialization.dumps(flags)
            options = head + ("}" if m.options.strip() == "{}" else "," + m.options.strip()[1:])
            out.append(dataclasses.replace(m, options=options, root_id=root))
        return out


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


def _compile(node: Any, ctx: _Ctx, plan: _Plan) -> tuple[Any, list[uuid.UUID]]:
    """Add the rows of ``node`` to ``plan``; return its result and its last tasks' ids
    (what a following step waits on)."""
    sig = _as_signature(node)
    if isinstance(sig, chord):
        return _compile_chord(sig, ctx, plan)
    if isinstance(sig, group):
        return _compile_group(sig, ctx, plan)
    if isinstance(sig, chain):
        return _compile_chain(sig, ctx, plan)
    return _compile_task(sig, ctx, plan)


def _compile_task(sig: Signature, ctx: _Ctx, plan: _Plan) -> tuple[Any, list[uuid.UUID]]:
    from .result import AsyncResult

    task = sig.type
    own, placement = _split(sig.options)
    opts = dict(own, **ctx.options)
    task_id = _maybe_uuid(placement.get("task_id")) or uuid.uuid4()
    immutable = sig.immutable or ctx.immutable
    if immutable:
        args, kwargs = sig.args, sig.kwargs
    else:
        args, kwargs = [*ctx.args, *sig.args], dict(sig.kwargs, **ctx.kwargs)
    deferred = ctx.after is not None
    schedule = dict(_schedule(placement), **ctx.schedule)
    countdown, eta = schedule.get("countdown"), schedule.get("eta")
    flags: dict[str, Any] = {"immutable": immutable}
    if deferred and countdown is not None:
        # Counted from when the step becomes ready, as in Celery (where the previous
        # step sends it): the trigger reads it.
        flags["countdown"] = float(countdown)
        countdown = None
    links = [*_signatures(placement.get("link")), *ctx.link]
    errbacks = [*_signatures(placement.get("link_error")), *ctx.link_error]
    group_id = ctx.group_id or _maybe_uuid(placement.get("group_id"))
    extra = {k: v for k, v in opts.items() if k not in (
        "queue", "priority", "expires", "ignore_result", "headers")}
    extra.update(parent_id=ctx.after if deferred else ctx.parent_id, root_id=ctx.root_id,
                 group_id=group_id)
    # A step that gets the previous result is checked with a stand-in for it.
    checked = [None, *args] if deferred and not immutable else args
    message, headers = task._build_message(
        checked, kwargs, countdown, eta, opts.get("expires"), opts.get("queue"),
        opts.get("priority"), task_id, links or None, errbacks or None,
        opts.get("ignore_result"), opts.get("headers"), extra,
    )
    if checked is not args:
        message = dataclasses.replace(message, args=serialization.dumps(args))
    message = dataclasses.replace(
        message, status=broker.DEFERRED if deferred else broker.WAITING,
        waiting_on=ctx.after, group_id=group_id)
    publish: tuple[str, Any, dict[str, Any]] | None = (
        None if deferred else (task.name, (args, kwargs, {}), headers))
    plan.add(_Row(message, flags, publish))
    return AsyncResult(str(task_id), task_name=task.name, using=plan.using), [task_id]


def _compile_group(g: group, ctx: _Ctx, plan: _Plan) -> tuple[Any, list[uuid.UUID]]:
    from .result import GroupResult

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
    for i, member in enumerate(g.tasks):
        link = ctx.link if i == 0 else ()
        if link:  # a group's link goes to its first task, immutable (as in Celery)
            link = tuple(s.clone().set(immutable=True) for s in link)
        result, ids = _compile(member, dataclasses.replace(base, link=link), plan)
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
    header_result, members = _compile_group(ch.header, header_ctx, plan)
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
    _attach_parent(result, header_result)
    return result, exits


def send(node: _Composite, args: Any, kwargs: dict[str, Any] | None,
          options: dict[str, Any]) -> Any:
    """Apply a chain, group or chord: every row and chord counter in one statement."""
    from .conf import conf
    from .trace import current_request

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
    plan = _Plan(using)
    result, _ = _compile(node, ctx, plan)
    if not plan.rows:
        return result  # an empty group: nothing to send
    messages = plan.finalize(root_id)
    published = [(r.publish, m) for r, m in zip(plan.rows.values(), messages) if r.publish]
    for (name, body, headers), m in published:
        signals.send(signals.before_task_publish, sender=name, body=body, exchange="",
                     routing_key=m.queue, headers=headers,
                     properties={"priority": m.priority}, declare=[], retry_policy=None)
    broker.enqueue_canvas(messages, plan.chords, using=using)
    for (name, body, headers), m in published:
        signals.send(signals.after_task_publish, sender=name, body=body, exchange="",
                     routing_key=m.queue, headers=headers)
    return result
