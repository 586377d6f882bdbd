"""Fault injection for djq's crash tests: with ``DJQ_FAILPOINTS=before-commit`` (say) in
its environment, a worker SIGKILLs its own main process at that point (with
``before-commit@2``, the second time it gets there). Without it (always, in
production) a failpoint costs one dict lookup."""

from __future__ import annotations

import os
import signal

#: No process has the rows yet: they are claimed (about to be started by the round trip),
#: or marked started in a transaction not yet committed.
BEFORE_HANDOVER = "before-handover"
#: Pool processes hold the rows, on hold; their start is not committed.
BEFORE_COMMIT = "before-commit"
#: The transaction has committed; the processes holding the rows were not released.
BEFORE_GO = "before-go"

_KNOWN = frozenset({BEFORE_HANDOVER, BEFORE_COMMIT, BEFORE_GO})


def _parse(text: str) -> dict[str, int]:
    """``name`` (fire at the first hit) or ``name@N`` (at the Nth), comma-separated."""
    active: dict[str, int] = {}
    for item in filter(None, text.split(",")):
        name, _, nth = item.partition("@")
        if name not in _KNOWN or (nth and not (nth.isdigit() and int(nth) >= 1)):
            # a misspelt failpoint would make its crash test pass for nothing
            raise ValueError(f"DJQ_FAILPOINTS names an unknown failpoint: {item!r}; "
                             f"known: {sorted(_KNOWN)}, each optionally @N (the Nth hit)")
        active[name] = int(nth or 1)
    return active


_ACTIVE = _parse(os.environ.get("DJQ_FAILPOINTS", ""))
_HITS: dict[str, int] = {}


def hit(name: str) -> None:
    if name in _ACTIVE:
        _HITS[name] = _HITS.get(name, 0) + 1
        if _HITS[name] == _ACTIVE[name]:
            os.kill(os.getpid(), signal.SIGKILL)
