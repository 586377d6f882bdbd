"""The registry of tasks by name, apart from :mod:`djq.task` so that the canvas, the
control functions and the worker can look names up without importing the calling code."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .exceptions import NotRegistered

if TYPE_CHECKING:
    from .task import Task


class Registry(dict[str, "Task"]):
    """Registered tasks by name.

    ``resolvers`` are asked, in order, about a name that is not registered when it is
    looked up with ``registry[name]`` (as a worker looks up a row's name; ``get`` and
    ``in`` never ask). A resolver returns a :class:`Task` for the name, which is then
    registered under it, or None. :mod:`djq.backends` adds one that adapts tasks of
    Django's Tasks framework by module path. Unresolved names raise NotRegistered.
    """

    def __init__(self) -> None:
        super().__init__()
        self.resolvers: list[Callable[[str], Task | None]] = []
        self.resolved: set[str] = set()  # names adapted from elsewhere, not declared by @task
        # The class of tasks, set by djq.task as it defines it: the registry sits below
        # it, so that the canvas can tell and make tasks without importing djq.task.
        self.task_class: type[Task] | None = None

    def __missing__(self, name: str) -> Task:
        for resolve in self.resolvers:
            found = resolve(name)
            if found is not None:
                self[name] = found
                self.resolved.add(name)
                return found
        raise NotRegistered(f"Task of kind {name!r} is not registered")

    def register(self, task: Task) -> Task:
        self[task.name] = task
        return task

    def is_task(self, value: object) -> bool:
        """Whether ``value`` is a task (an instance of :class:`djq.Task`)."""
        return self.task_class is not None and isinstance(value, self.task_class)

    def stand_in(self, name: str, run: Callable[..., Any]) -> Task:
        """A task known only by ``name``, not registered: it can be sent, and runs
        ``run`` if called here."""
        assert self.task_class is not None, "djq.task defines the task class"
        return self.task_class(run, name=name, typing=False)

    def unregistered(self, name: str) -> Task:
        """A task known only by name: it can be sent, not run here."""

        def run(*args: Any, **kwargs: Any) -> Any:
            raise NotRegistered(f"Task of kind {name!r} is not registered")

        return self.stand_in(name, run)


registry = Registry()
