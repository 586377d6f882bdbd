"""The djq worker: consumer loop, pools, maintenance (lease, recovery, pruning)."""

from __future__ import annotations

from .consumer import Worker, default_hostname

__all__ = ["Worker", "default_hostname"]
