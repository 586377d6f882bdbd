"""Many calls of one task sent at once: ``add.delay_many([((2, 3), {}), ((4, 5), {})])``.

The rows are the ones ``delay()`` would write, one per call (no canvas), each checked and
encoded as ``delay()`` checks and encodes it; they go in by ``COPY`` (many rows) or one
INSERT (few), inside the caller's transaction if there is one, with the publish signals
sent for each call as for ``delay()``. A bad call anywhere in the list raises before
anything is stored, naming its position.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import broker
from .conf import conf
from .exceptions import EncodeError
from .publish import Prepared, collector_paused, publish, publish_listened
from .result import AsyncResult
from .serialization import encode_arguments

if TYPE_CHECKING:
    from .task import Task

# Options of one call that make no sense shared by many.
_REFUSED = frozenset({"task_id", "parent_id", "root_id", "group_id", "retries", "chord"})


def send_many(task: Task, calls: Iterable[Any], options: dict[str, Any]) -> list[Any]:
    """Send ``calls`` ((args, kwargs) pairs) of ``task`` with the shared ``options``
    (those of ``apply_async``); returns an ``AsyncResult`` per call, in order."""
    shared = sorted(_REFUSED & set(options))
    if shared:
        raise TypeError(f"delay_many() cannot share {', '.join(shared)} among many calls")
    options = dict(options)
    using = options.get("using")
    params = {key: options.pop(key, None) for key in (
        "countdown", "eta", "expires", "queue", "priority", "link", "link_error",
        "ignore_result", "headers")}
    task.check_options(options)
    pairs = [_pair(i, call) for i, call in enumerate(calls)]
    if conf.task_always_eager:
        return [task.apply_async(args, kwargs, **params, **options) for args, kwargs in pairs]
    template = task.call_template(options=options, **params)
    messages: list[broker.Message] = []
    checked: list[tuple[list[Any], dict[str, Any]]] = []
    with collector_paused():
        for i, (args, kwargs) in enumerate(pairs):
            try:
                args, kwargs = task.checked_arguments(args, kwargs)
                args_json, kwargs_json = encode_arguments(args, kwargs)
            except (TypeError, ValueError, EncodeError) as exc:
                raise type(exc)(f"call {i}: {exc}") from exc
            messages.append(template.message(uuid.uuid4(), args_json, kwargs_json))
            checked.append((args, kwargs))
    if not messages:
        return []
    # The calls and their headers are worked out only for a task whose publish signals
    # someone hears.
    published = [Prepared(m, (args, kwargs, {}), template.headers(m.id, args, kwargs))
                 for m, (args, kwargs) in zip(messages, checked)
                 ] if publish_listened(task.name) else []
    publish(published, lambda rows: broker.enqueue_fresh(rows, using=using), messages)
    return [AsyncResult(str(m.id), task_name=task.name, using=using) for m in messages]


def _pair(index: int, call: Any) -> tuple[Any, dict[str, Any]]:
    """One call as (args, kwargs): a pair of a sequence and a dict."""
    if (not isinstance(call, (tuple, list)) or len(call) != 2
            or not isinstance(call[0], (tuple, list)) or not isinstance(call[1], dict)):
        raise TypeError(f"delay_many(): call {index} must be an (args, kwargs) pair, "
                        f"not {call!r:.80}")
    return call[0], call[1]
