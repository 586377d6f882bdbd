"""``python manage.py djq ...``: Celery's operator commands, answered from the database.

Subcommands: ``status``, ``result``, ``purge``, ``inspect``, ``revoke``, ``retry``,
``call`` and ``shell``. Each (but ``shell``) prints a readable answer, or JSON with
``--json``; a bad id, bad JSON or unknown task is a one-line error and exit status 1.
``status`` and the per-node ``inspect`` methods exit with 69 (Celery's
``EX_UNAVAILABLE``) when no worker is online.
"""

from __future__ import annotations

import datetime
import importlib
import json
import pprint
import sys
import uuid
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.utils import timezone

from djq import broker, cluster, control, states
from djq.exceptions import DjqError, NotRegistered, TaskNotFinished, TaskNotFound
from djq.result import AsyncResult
from djq.task import Task, registry

EX_UNAVAILABLE = 69

INSPECT_METHODS = ("active", "scheduled", "reserved", "revoked", "stats", "registered",
                   "query_task")


def plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def task_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise CommandError(f"{value!r} is not a task id (a UUID)") from None


def parse_json(value: str | None, option: str, kind: type, default: Any) -> Any:
    if value is None or value == "":
        return default
    try:
        decoded = json.loads(value)
    except ValueError as exc:
        raise CommandError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(decoded, kind):
        raise CommandError(f"{option} must be a JSON {'list' if kind is list else 'object'}, "
                           f"not {type(decoded).__name__}")
    return decoded


def parse_datetime(value: str, option: str) -> datetime.datetime:
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option} must be an ISO 8601 date and time, not {value!r}") \
            from None
    return when if timezone.is_aware(when) else timezone.make_aware(when)


def lookup_task(name: str) -> Task:
    try:
        return registry[name]
    except NotRegistered as exc:
        raise CommandError(str(exc.args[0] if exc.args else exc)) from None


def task_line(info: dict[str, Any]) -> str:
    line = (f"{info['name']}[{info['id']}] args={json.dumps(info['args'])} "
            f"kwargs={json.dumps(info['kwargs'])}")
    if info.get("retries"):
        line += f" retries={info['retries']}"
    return line


class Command(BaseCommand):
    help = "Operate djq: status, result, purge, inspect, revoke, retry, call, shell."
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

        def add(name: str, help: str, json_option: bool = True) -> CommandParser:
            p: CommandParser = sub.add_parser(name, help=help, description=help)
            if json_option:
                p.add_argument("--json", action="store_true", help="Print JSON for scripts")
            return p

        add("status", "Show the workers online (\"N nodes online\").")

        p = add("ping", "Exit 0 if the worker(s) have a current heartbeat, 69 if not (a "
                        "liveness probe).")
        p.add_argument("-d", "--destination", default=None,
                       help="Comma-separated worker names (-n) that must all answer "
                            "(default: any worker)")

        p = add("result", "Show a task's result (or, with --traceback, its traceback).")
        p.add_argument("task_id", metavar="TASK_ID")
        p.add_argument("-t", "--task", default=None, metavar="NAME",
                       help="The task's name: refuse another task's id")
        p.add_argument("--traceback", action="store_true", help="Show the traceback instead")

        p = add("purge", "Delete every waiting task (never running tasks or results).")
        p.add_argument("-Q", "--queues", default=None,
                       help="Comma-separated queues to purge (default: every queue)")
        p.add_argument("-f", "--force", action="store_true", help="Do not ask for confirmation")

        p = add("inspect", "Inspect the workers: " + ", ".join(INSPECT_METHODS) + ".")
        p.add_argument("method", choices=INSPECT_METHODS, metavar="METHOD",
                       help="|".join(INSPECT_METHODS))
        p.add_argument("ids", nargs="*", metavar="ID", help="Task ids (query_task)")
        p.add_argument("-d", "--destination", default=None,
                       help="Comma-separated worker names to ask (default: all)")

        p = add("revoke", "Revoke a task: it never runs, or with --terminate is killed.")
        p.add_argument("task_id", metavar="TASK_ID")
        p.add_argument("--terminate", action="store_true", help="Kill it if it is running")
        p.add_argument("-s", "--signal", default="SIGTERM",
                       help="Signal to terminate with (default SIGTERM)")

        p = add("retry", "Re-queue a finished task under the same id.")
        p.add_argument("task_id", metavar="TASK_ID")

        p = add("call", "Send a task by name; prints its id.")
        p.add_argument("name", metavar="NAME")
        # (``args`` is a name Django keeps for positional arguments: other dests.)
        p.add_argument("-a", "--args", dest="call_args", default=None,
                       help="Positional arguments, a JSON list")
        p.add_argument("-k", "--kwargs", dest="call_kwargs", default=None,
                       help="Keyword arguments, a JSON object")
        p.add_argument("--countdown", type=float, default=None, help="Seconds from now")
        p.add_argument("--eta", default=None, help="ISO 8601 date and time to run at")
        p.add_argument("--expires", default=None, help="Seconds, or an ISO 8601 date and time")
        p.add_argument("-Q", "--queue", default=None, help="Queue to send it to")
        p.add_argument("--priority", type=int, default=None, help="Higher runs first")

        p = add("shell", "A Python shell with djq and every registered task loaded.",
                json_option=False)
        kind = p.add_mutually_exclusive_group()
        kind.add_argument("--ipython", action="store_true", help="Use IPython")
        kind.add_argument("--bpython", action="store_true", help="Use bpython")
        kind.add_argument("--python", action="store_true", help="Use the plain Python shell")
        p.add_argument("--without-tasks", action="store_true",
                       help="Do not put the registered tasks in the shell's namespace")
        p.add_argument("-c", "--command", default=None,
                       help="Run this code in the shell's namespace and exit")

    def handle(self, *args: Any, **options: Any) -> None:
        handler = getattr(self, "do_" + options["subcommand"])
        try:
            handler(options)
        except (TaskNotFound, TaskNotFinished) as exc:
            raise CommandError(str(exc)) from None

    # -- output -------------------------------------------------------------------------
    def emit_json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str, sort_keys=False))

    def need_nodes(self, options: dict[str, Any]) -> list[cluster.Node]:
        nodes = cluster.nodes()
        wanted = [d.strip() for d in (options.get("destination") or "").split(",") if d.strip()]
        if wanted:
            nodes = [n for n in nodes if n.hostname in wanted]
        if not nodes:
            raise CommandError("No nodes online (no worker has a current heartbeat)",
                               returncode=EX_UNAVAILABLE)
        return nodes

    def nodes_footer(self, count: int) -> None:
        self.stdout.write(f"\n{count} {plural(count, 'node')} online.")

    # -- status --------------------------------------------------------------------------
    def do_status(self, options: dict[str, Any]) -> None:
        nodes = self.need_nodes(options)
        if options["json"]:
            self.emit_json({n.hostname: {"ok": "pong", "pid": n.pid, "pool": n.pool,
                                         "concurrency": n.concurrency,
                                         "queues": list(n.queues)} for n in nodes})
            return
        for n in nodes:
            self.stdout.write(f"->  {n.hostname}: OK")
        self.nodes_footer(len(nodes))

    # -- ping ----------------------------------------------------------------------------
    def do_ping(self, options: dict[str, Any]) -> None:
        """Celery's ``inspect ping``, from the heartbeats: every named worker must hold a
        current lease (its last heartbeat within ``worker_lease`` seconds)."""
        try:
            nodes = cluster.nodes()
        except DatabaseError as exc:
            raise CommandError(f"Database unavailable: {exc}".splitlines()[0],
                               returncode=EX_UNAVAILABLE) from None
        wanted = [d.strip() for d in (options.get("destination") or "").split(",")
                  if d.strip()]
        missing = sorted(set(wanted) - {n.hostname for n in nodes})
        if missing:
            raise CommandError(f"No current heartbeat from {', '.join(missing)}",
                               returncode=EX_UNAVAILABLE)
        if wanted:
            nodes = [n for n in nodes if n.hostname in wanted]
        if not nodes:
            raise CommandError("No nodes online (no worker has a current heartbeat)",
                               returncode=EX_UNAVAILABLE)
        if options["json"]:
            self.emit_json({n.hostname: {"ok": "pong"} for n in nodes})
            return
        for n in nodes:
            self.stdout.write(f"->  {n.hostname}: OK\n        pong")
        self.nodes_footer(len(nodes))

    # -- result --------------------------------------------------------------------------
    def do_result(self, options: dict[str, Any]) -> None:
        tid = task_id(options["task_id"])
        row = broker.fetch(tid)
        if row is None:
            raise CommandError(f"No task with id {tid}")
        if options["task"]:
            lookup_task(options["task"])
            if row["name"] != options["task"]:
                raise CommandError(f"Task {tid} is a {row['name']}, not a {options['task']}")
        result = AsyncResult(tid)
        state = row["state"]
        if options["json"]:
            self.emit_json({
                "id": tid, "name": row["name"], "state": state,
                "result": _stored(row["result"]), "traceback": row["traceback"],
                "worker": row["worker"], "queue": row["queue"], "retries": row["retries"],
                "date_created": row["date_created"], "date_started": row["date_started"],
                "date_done": row["date_done"],
            })
            return
        if options["traceback"]:
            tb = row["traceback"]
            self.stdout.write(tb.rstrip("\n") if tb else f"No traceback: task {tid} is {state}")
            return
        if state in states.READY_STATES:
            self.stdout.write(pretty(result.result))
        elif row["result"] is not None:
            self.stdout.write(f"{state}: {pretty(result.result)}")
        else:
            self.stdout.write(f"Task {tid} is {state}: no result yet")

    # -- purge ---------------------------------------------------------------------------
    def do_purge(self, options: dict[str, Any]) -> None:
        queues = [q.strip() for q in (options["queues"] or "").split(",") if q.strip()] or None
        names = queues or sorted(cluster.waiting_counts())
        if not options["force"]:
            out = sys.stderr if options["json"] else None
            count = len(names)
            self.say(f"WARNING: This will remove all tasks from {count} "
                     f"{plural(count, 'queue')}: {', '.join(names) or '(none)'}.\n"
                     "         There is no undo for this operation!\n\n"
                     "(to skip this prompt use the -f option)\n", out)
            answer = self.ask("Are you sure you want to delete all tasks? [y/N]: ", out,
                              options.get("stdin"))
            if answer.strip().lower() not in ("y", "yes"):
                raise CommandError("Aborted: nothing purged")
        removed = control.purge(queues)
        if options["json"]:
            self.emit_json({"purged": removed, "queues": names})
        elif removed:
            self.stdout.write(f"Purged {removed} {plural(removed, 'message')} from "
                              f"{len(names)} known task {plural(len(names), 'queue')}.")
        else:
            self.stdout.write(f"No messages purged from {len(names)} "
                              f"{plural(len(names), 'queue')}.")

    def say(self, text: str, out: TextIO | None) -> None:
        if out is None:
            self.stdout.write(text)
        else:
            out.write(text + "\n")

    def ask(self, prompt: str, out: TextIO | None, stdin: TextIO | None) -> str:
        if out is None:
            self.stdout.write(prompt, ending="")
            self.stdout.flush()
        else:
            out.write(prompt)
            out.flush()
        source = stdin or sys.stdin
        line = source.readline()
        if not (hasattr(source, "isatty") and source.isatty()):
            (out or self.stdout).write("\n")  # the answer was not echoed
        return line

    # -- inspect -------------------------------------------------------------------------
    def do_inspect(self, options: dict[str, Any]) -> None:
        method = options["method"]
        ids = options["ids"]
        if method == "query_task":
            if not ids:
                raise CommandError("inspect query_task needs one or more task ids")
            self.inspect_query_task([task_id(i) for i in ids], options)
            return
        if ids:
            raise CommandError(f"inspect {method} takes no task ids")
        if method == "scheduled":
            self.inspect_scheduled(options)
            return
        nodes = self.need_nodes(options)
        names = [n.hostname for n in nodes]
        replies: dict[str, Any]
        if method == "active":
            replies = cluster.active(names)
        elif method == "reserved":
            replies = cluster.reserved(names)
        elif method == "stats":
            all_stats = cluster.stats()
            replies = {name: all_stats[name] for name in names if name in all_stats}
        elif method == "registered":
            all_registered = cluster.registered()
            replies = {name: all_registered.get(name, []) for name in names}
        else:  # revoked: every node honours every revoke, as in Celery
            ids_revoked = cluster.revoked()
            replies = {name: ids_revoked for name in names}
        if options["json"]:
            self.emit_json(replies)
            return
        for name in names:
            self.stdout.write(f"->  {name}: OK")
            reply = replies.get(name)
            if method == "stats":
                body = json.dumps(reply, indent=4, default=str)
                self.stdout.write("\n".join("    " + line for line in body.splitlines()))
                continue
            if not reply:
                self.stdout.write("    - empty -")
                continue
            for item in reply:
                text = task_line(item) if isinstance(item, dict) else str(item)
                self.stdout.write(f"    * {text}")
        self.nodes_footer(len(names))

    def inspect_scheduled(self, options: dict[str, Any]) -> None:
        by_queue = cluster.scheduled()
        if options["json"]:
            self.emit_json(by_queue)
            return
        if not by_queue:
            self.stdout.write("- empty -")
            return
        for queue, entries in by_queue.items():
            self.stdout.write(f"->  queue {queue}: {len(entries)} scheduled")
            for entry in entries:
                self.stdout.write(f"    * {entry['eta']} priority={entry['priority']} "
                                  f"{task_line(entry['request'])}")

    def inspect_query_task(self, ids: list[str], options: dict[str, Any]) -> None:
        found, unknown = cluster.query_task(ids)
        if options["json"]:
            self.emit_json(found)
        else:
            for holder, tasks in found.items():
                self.stdout.write(f"->  {holder}: OK")
                for tid, (label, info) in tasks.items():
                    self.stdout.write(f"    * {tid}: {label} {info['state']} "
                                      f"{task_line(info)}")
        if unknown:
            raise CommandError(f"No task with id {', '.join(unknown)}")

    # -- revoke, retry -------------------------------------------------------------------
    def do_revoke(self, options: dict[str, Any]) -> None:
        tid = task_id(options["task_id"])
        try:
            outcome = control.revoke(tid, terminate=options["terminate"],
                                     signal=options["signal"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if outcome == "unknown":
            raise CommandError(f"No task with id {tid}")
        if options["json"]:
            self.emit_json({"id": tid, "outcome": outcome})
            return
        self.stdout.write({
            "revoked": f"Task {tid} revoked: it will not run.",
            "terminating": f"Task {tid} revoked: its worker terminates it "
                           f"({options['signal']}).",
            "running": f"Task {tid} has started and runs to its end "
                       "(use --terminate to kill it).",
            "finished": f"Task {tid} has already finished; nothing to revoke.",
        }.get(outcome, f"Task {tid}: {outcome}"))

    def do_retry(self, options: dict[str, Any]) -> None:
        tid = task_id(options["task_id"])
        control.retry(tid)
        if options["json"]:
            self.emit_json({"id": tid, "requeued": True})
        else:
            self.stdout.write(f"Task {tid} re-queued.")

    # -- call ----------------------------------------------------------------------------
    def do_call(self, options: dict[str, Any]) -> None:
        task = lookup_task(options["name"])
        args = parse_json(options["call_args"], "--args", list, [])
        kwargs = parse_json(options["call_kwargs"], "--kwargs", dict, {})
        send: dict[str, Any] = {}
        if options["countdown"] is not None:
            send["countdown"] = options["countdown"]
        if options["eta"]:
            send["eta"] = parse_datetime(options["eta"], "--eta")
        if options["expires"]:
            try:
                send["expires"] = float(options["expires"])
            except ValueError:
                send["expires"] = parse_datetime(options["expires"], "--expires")
        if options["queue"]:
            send["queue"] = options["queue"]
        if options["priority"] is not None:
            send["priority"] = options["priority"]
        try:
            result = task.apply_async(args, kwargs, **send)
        except (TypeError, ValueError, DjqError) as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.emit_json({"id": str(result.id), "name": task.name,
                            "queue": send.get("queue") or task.queue or None})
        else:
            self.stdout.write(str(result.id))

    # -- shell ---------------------------------------------------------------------------
    def do_shell(self, options: dict[str, Any]) -> None:
        namespace = shell_namespace(with_tasks=not options["without_tasks"])
        if options["command"]:
            exec(options["command"], namespace)  # noqa: S102 - the operator's own code
            return
        if options["python"]:
            run_python(namespace)
        elif options["bpython"]:
            run_bpython(namespace)
        elif options["ipython"]:
            run_ipython(namespace)
        else:
            # Celery's choice: IPython if installed, else bpython, else plain Python.
            for runner in (run_ipython, run_bpython):
                try:
                    runner(namespace)
                    return
                except CommandError:
                    continue
            run_python(namespace)


def _stored(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def pretty(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseException):
        return repr(value)
    return pprint.pformat(value)


def shell_namespace(with_tasks: bool = True) -> dict[str, Any]:
    """What the shell starts with: djq's public names and, by their function's name,
    every registered task (as Celery's shell does)."""
    import djq

    namespace: dict[str, Any] = {"djq": djq}
    for name in ("task", "shared_task", "Task", "AsyncResult", "GroupResult", "signature",
                 "subtask", "chain", "group", "chord", "states"):
        if hasattr(djq, name):
            namespace[name] = getattr(djq, name)
    if with_tasks:
        declared = [t for n, t in registry.items() if n not in registry.resolved]
        resolved = [t for n, t in registry.items() if n in registry.resolved]
        for task in declared:
            short = getattr(task, "__name__", None) or task.name.rsplit(".", 1)[-1]
            if short.isidentifier():
                namespace[short] = task  # as in Celery, a later task of the name wins
        for task in resolved:  # e.g. Django Tasks adapters: never shadow a @task
            short = getattr(task, "__name__", None) or task.name.rsplit(".", 1)[-1]
            if short.isidentifier():
                namespace.setdefault(short, task)
    return namespace


def run_ipython(namespace: dict[str, Any]) -> None:
    try:
        ipython = importlib.import_module("IPython")
    except ImportError:
        raise CommandError("IPython is not installed") from None
    ipython.start_ipython(argv=[], user_ns=namespace)


def run_bpython(namespace: dict[str, Any]) -> None:
    try:
        bpython = importlib.import_module("bpython")
    except ImportError:
        raise CommandError("bpython is not installed") from None
    bpython.embed(namespace)


def run_python(namespace: dict[str, Any]) -> None:
    import code

    try:
        import readline
        import rlcompleter

        readline.set_completer(rlcompleter.Completer(namespace).complete)
        readline.parse_and_bind("tab:complete")
    except ImportError:
        pass
    names = ", ".join(sorted(k for k in namespace if not k.startswith("_")))
    code.interact(banner=f"djq shell (Python {sys.version.split()[0]}): {names}",
                  local=namespace, exitmsg="")
