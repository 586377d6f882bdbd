"""Fault injection for djq's crash tests: with ``DJQ_FAILPOINTS=before-commit`` (say) in
its environment, a worker SIGKILLs its own main process at that point. Without it (always, in
production) a failpoint costs one set lookup."""

from __future__ import annotations

import os
import signal

#: Rows are marked started in a transaction not yet committed; no process has them.
BEFORE_HANDOVER = "before-handover"
#: Pool processes hold the rows, on hold; the transaction is not committed.
BEFORE_COMMIT = "before-commit"
#: The transaction has committed; the processes holding the rows were not released.
BEFORE_GO = "before-go"

_KNOWN = frozenset({BEFORE_HANDOVER, BEFORE_COMMIT, BEFORE_GO})
_ACTIVE = frozenset(filter(None, os.environ.get("DJQ_FAILPOINTS", "").split(",")))
if _ACTIVE - _KNOWN:  # a misspelt failpoint would make its crash test pass for nothing
    raise ValueError(f"DJQ_FAILPOINTS names unknown failpoints: {sorted(_ACTIVE - _KNOWN)}; "
                     f"known: {sorted(_KNOWN)}")


def hit(name: str) -> None:
    if name in _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
