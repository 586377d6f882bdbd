"""Fault injection for djq's crash tests: with ``DJQ_FAILPOINTS=before-handover`` in its
environment, a worker SIGKILLs its own main process at that point. Without it (always, in
production) a failpoint costs one set lookup."""

from __future__ import annotations

import os
import signal

_ACTIVE = frozenset(filter(None, os.environ.get("DJQ_FAILPOINTS", "").split(",")))

#: Rows were just committed as started; no pool process has them yet.
BEFORE_HANDOVER = "before-handover"


def hit(name: str) -> None:
    if name in _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
