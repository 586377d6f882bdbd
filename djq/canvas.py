"""Signatures: a task call wrapped up to be sent later, stored, or passed as an argument.

A :class:`Signature` is a ``dict`` (so it serialises to JSON as itself), as in Celery.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .result import AsyncResult
    from .task import Task


class Signature(dict):  # type: ignore[type-arg]
    """A task name with arguments and options, to be called or sent later."""

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
        super().__init__(
            task=name,
            args=list(args or ()),
            kwargs=dict(kwargs or {}),
            options=dict(options or {}, **ex),
            subtask_type=subtask_type,
            immutable=immutable,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Signature:
        if isinstance(d, Signature):
            return d
        return cls(d)

    # -- attributes Celery users reach for --------------------------------------------
    @property
    def task(self) -> str:
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
    def id(self) -> str | None:
        task_id = self["options"].get("task_id")
        return None if task_id is None else str(task_id)

    @property
    def type(self) -> Task:
        """The task; for a name this process has not registered, a stand-in that can
        still be sent (a worker that knows the name runs it)."""
        if getattr(self, "_type", None) is None:
            from .task import registry, unregistered

            self._type = registry.get(self.task) or unregistered(self.task)
        assert self._type is not None
        return self._type

    # -- building ---------------------------------------------------------------------
    def clone(self, args: Any = None, kwargs: dict[str, Any] | None = None,
              **opts: Any) -> Signature:
        """A copy, with partial arguments prepended and kwargs and options merged."""
        sig = Signature(copy.deepcopy(dict(self)))
        sig._type = getattr(self, "_type", None)
        if args or kwargs or opts:
            new_args, new_kwargs, new_opts = self._merge(args, kwargs, opts)
            sig["args"], sig["kwargs"], sig["options"] = list(new_args), new_kwargs, new_opts
        return sig

    def _merge(self, args: Any = None, kwargs: dict[str, Any] | None = None,
               options: dict[str, Any] | None = None) -> tuple[list[Any], dict[str, Any],
                                                             dict[str, Any]]:
        opts = dict(self["options"], **(options or {}))
        if self.immutable:
            return list(self["args"]), dict(self["kwargs"]), opts
        merged_args = list(args or ()) + list(self["args"])
        merged_kwargs = dict(self["kwargs"], **(kwargs or {}))
        return merged_args, merged_kwargs, opts

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Set options in place; returns the signature."""
        if immutable is not None:
            self["immutable"] = immutable
        self["options"].update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self["immutable"] = immutable

    def link(self, callback: Signature) -> Signature:
        """Add a callback run with this task's result when it succeeds."""
        self["options"].setdefault("link", []).append(Signature.from_dict(callback))
        return callback

    def link_error(self, errback: Signature) -> Signature:
        """Add an errback run when this task fails."""
        self["options"].setdefault("link_error", []).append(Signature.from_dict(errback))
        return errback

    on_error = link_error

    # -- running ----------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task inline, in this process."""
        merged_args, merged_kwargs, _ = self._merge(args, kwargs)
        return self.type(*merged_args, **merged_kwargs)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Any = None, kwargs: dict[str, Any] | None = None,
                    **options: Any) -> AsyncResult:
        """Send the task, with partial ``args`` prepended and ``kwargs``/options merged."""
        merged_args, merged_kwargs, merged_opts = self._merge(args, kwargs, options)
        result: AsyncResult = self.type.apply_async(merged_args, merged_kwargs, **merged_opts)
        return result

    def apply(self, args: Any = None, kwargs: dict[str, Any] | None = None,
              **options: Any) -> AsyncResult:
        merged_args, merged_kwargs, merged_opts = self._merge(args, kwargs, options)
        result: AsyncResult = self.type.apply(merged_args, merged_kwargs, **merged_opts)
        return result

    def __repr__(self) -> str:
        args = ", ".join([repr(a) for a in self["args"]]
                         + [f"{k}={v!r}" for k, v in self["kwargs"].items()])
        return f"{self['task']}({args}){'!' if self.immutable else ''}"

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        sig = Signature(copy.deepcopy(dict(self), memo))
        sig._type = getattr(self, "_type", None)
        return sig


def signature(varies: str | dict[str, Any] | Signature, *args: Any, **kwargs: Any) -> Signature:
    """Build a signature from a task name (``djq.signature("app.tasks.add", args=(2, 2))``)
    or turn a dict back into one."""
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
