"""Who may do what with tasks and workers: one rule, asked by the admin, the monitor and
the REST API alike.

Each action needs one of Django's model permissions (:data:`RULES`). Superusers pass.
Seeing tasks, queues and stats needs ``djq.view_task`` (or ``djq.change_task``, which
implies it, as in the admin); enqueueing needs ``djq.add_task``; retrying needs
``djq.change_task``; revoking and terminating need ``djq.revoke_task`` (djq's own) and
seeing tasks; seeing workers needs ``djq.view_worker``.

The API keeps ``api_permission_classes`` as the outer gate, and the monitor stays
staff-only; this rule applies behind them. A non-staff user of an owner-scoped API acts
on the tasks they enqueued (``own=True``): owning a task is their permission for it.
"""

from __future__ import annotations

from typing import Any

VIEW_TASKS = "view_tasks"
ENQUEUE = "enqueue"
RETRY = "retry"
REVOKE = "revoke"
TERMINATE = "terminate"
VIEW_WORKERS = "view_workers"
VIEW_SCHEDULES = "view_schedules"
ADD_SCHEDULE = "add_schedule"
CHANGE_SCHEDULE = "change_schedule"
DELETE_SCHEDULE = "delete_schedule"
RUN_SCHEDULE = "run_schedule"

#: The Django permissions that allow each action (any one of them is enough).
RULES: dict[str, tuple[str, ...]] = {
    VIEW_TASKS: ("djq.view_task", "djq.change_task"),
    ENQUEUE: ("djq.add_task",),
    RETRY: ("djq.change_task",),
    REVOKE: ("djq.revoke_task",),
    TERMINATE: ("djq.revoke_task",),
    VIEW_WORKERS: ("djq.view_worker", "djq.change_worker"),
    VIEW_SCHEDULES: ("djq.view_periodictask", "djq.change_periodictask"),
    ADD_SCHEDULE: ("djq.add_periodictask",),
    CHANGE_SCHEDULE: ("djq.change_periodictask",),
    DELETE_SCHEDULE: ("djq.delete_periodictask",),
    # "Run now" sends its task: it needs what sending a task needs.
    RUN_SCHEDULE: ("djq.add_task",),
}

#: Actions a user may take on tasks they own under ``api_owner_scoped``.
OWN_ACTIONS = frozenset({VIEW_TASKS, ENQUEUE, RETRY, REVOKE, TERMINATE})

#: Actions on a task the user must also be allowed to see (as in the admin, where
#: change implies view; ``djq.change_task`` already does).
NEED_VIEW = frozenset({REVOKE, TERMINATE})
#: Likewise for periodic tasks: acting on one needs seeing it.
NEED_VIEW_SCHEDULES = frozenset({RUN_SCHEDULE, DELETE_SCHEDULE})


def allowed(user: Any, action: str, *, own: bool = False) -> bool:
    """Whether ``user`` may take ``action`` (one of :data:`RULES`' keys). ``own``: the
    request is limited to the user's own tasks (an owner-scoped API)."""
    try:
        needed = RULES[action]
    except KeyError:
        raise ValueError(f"Unknown djq action {action!r}") from None
    if own and action in OWN_ACTIONS:
        return True
    if user is None or not getattr(user, "is_active", False):
        return False
    if getattr(user, "is_superuser", False):
        return True
    if action in NEED_VIEW and not allowed(user, VIEW_TASKS):
        return False
    if action in NEED_VIEW_SCHEDULES and not allowed(user, VIEW_SCHEDULES):
        return False
    return any(user.has_perm(permission) for permission in needed)


def needed(action: str) -> str:
    """The permission to name in a refusal: ``djq.view_task``."""
    return RULES[action][0]


def allowed_actions(user: Any) -> dict[str, bool]:
    """Every action and whether ``user`` may take it, for templates."""
    return {action: allowed(user, action) for action in RULES}


__all__ = ["allowed", "allowed_actions", "needed", "RULES", "VIEW_TASKS", "ENQUEUE", "RETRY",
           "REVOKE", "TERMINATE", "VIEW_WORKERS", "VIEW_SCHEDULES", "ADD_SCHEDULE",
           "CHANGE_SCHEDULE", "DELETE_SCHEDULE", "RUN_SCHEDULE"]
