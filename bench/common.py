"""Helpers shared by every side of the benchmark. Standard library only: the peers import
this module from their own virtualenv.

Timing events travel as UDP datagrams to a collector in the measuring process: a task
records ``time.time()`` as its first act and sends ``"<kind> <key> <time>"``; a worker
sends ``"ready <system> <time>"`` when it is ready to take work. The same code path for
every system keeps the measurement the same for every system; a datagram on the loopback
costs a few microseconds and touches none of the queues under test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STAMP_ENV = "BENCH_STAMP_ADDR"
PGID_FILE_ENV = "BENCH_PGID_FILE"
RESULT_PREFIX = "BENCH-RESULT "

_sock: socket.socket | None = None
_sock_pid = 0


def send_stamp(kind: str, key: Any) -> None:
    """Send ``time.time()`` now, tagged ``kind``/``key``, to the collector (if any)."""
    now = time.time()
    addr = os.environ.get(STAMP_ENV)
    if not addr:
        return
    global _sock, _sock_pid
    if _sock is None or _sock_pid != os.getpid():
        _sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        _sock_pid = os.getpid()
    host, port = addr.rsplit(":", 1)
    try:
        _sock.sendto(f"{kind} {key} {now:.6f}".encode(), (host, int(port)))
    except OSError:
        pass


class StampCollector:
    """Receives the stamps of tasks and workers on a UDP port of 127.0.0.1."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.lock = threading.Lock()
        self.stamps: dict[str, dict[str, float]] = {}
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="stamps", daemon=True)
        self.thread.start()

    @property
    def addr(self) -> str:
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    def _run(self) -> None:
        while not self.closed:
            try:
                data = self.sock.recv(512)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                kind, key, value = data.decode().split(" ")
                with self.lock:
                    # The first stamp of a key wins: a task run twice started the first time.
                    self.stamps.setdefault(kind, {}).setdefault(key, float(value))
            except ValueError:
                continue

    def get(self, kind: str) -> dict[str, float]:
        with self.lock:
            return dict(self.stamps.get(kind, {}))

    def clear(self) -> None:
        with self.lock:
            self.stamps.clear()

    def wait(self, kind: str, count: int, timeout: float) -> dict[str, float]:
        """Wait until ``count`` stamps of ``kind`` arrived (or ``timeout`` passed)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.get(kind)
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.005)

    def close(self) -> None:
        self.closed = True
        self.sock.close()


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it is truthy; returns its last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` (0-100) percentile by linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_result(sent: dict[str, float], started: dict[str, float]) -> dict[str, Any]:
    """W3's summary: send→start latencies in ms, from each task's own start stamp."""
    lat = [(started[k] - t) * 1000.0 for k, t in sent.items() if k in started]
    return {
        "p50": percentile(lat, 50), "p95": percentile(lat, 95), "p99": percentile(lat, 99),
        "max": max(lat) if lat else float("nan"), "unit": "ms", "n": len(sent),
        "received": len(lat), "complete": len(lat) == len(sent),
    }


def paced_stamps(n: int, gap: float, send: Callable[[str], Any],
                 collector: Any) -> tuple[dict[str, float], dict[str, float]]:
    """W3 with idle workers: one warm-up task, then ``n`` tasks sent ``gap`` seconds apart
    (each stamped just before it is sent); returns (sent, started) times by key."""
    time.sleep(0.5)  # idle: past start-up work, waiting for work
    send("warmup")
    collector.wait("start", 1, 10)
    collector.clear()
    sent: dict[str, float] = {}
    t0 = time.perf_counter()
    for i in range(n):
        delay = t0 + i * gap - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent[str(i)] = time.time()
        send(str(i))
    return sent, collector.wait("start", n, 15)


def timed_calls(call: Callable[[int], Any], n: int, cap: float,
                check_every: int = 1) -> tuple[int, float]:
    """W1/W5: ``call(i)`` for i in 0..n-1, stopping once ``cap`` seconds have passed (looked
    at every ``check_every`` calls); returns (calls made, seconds)."""
    t0 = time.perf_counter()
    done = 0
    while done < n:
        call(done)
        done += 1
        if done % check_every == 0 and time.perf_counter() - t0 > cap:
            break
    return done, time.perf_counter() - t0


# --- processes ----------------------------------------------------------------------


class Group:
    """A subprocess in a session (process group) of its own, with its whole group killed at
    the end. Its pgid is also appended to ``$BENCH_PGID_FILE`` so the driver can kill it
    even if the process that started it dies first."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None,
                 log_path: Path | str | None = None, cwd: Path | str = ROOT) -> None:
        self.argv = list(argv)
        self.log_path = Path(log_path) if log_path else None
        # Kept open for the life of the process (closed in stop()).
        self.log = (open(self.log_path, "wb")  # noqa: SIM115
                    if self.log_path else subprocess.DEVNULL)
        self.started = time.time()
        self.proc = subprocess.Popen(
            self.argv, env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        pgid_file = os.environ.get(PGID_FILE_ENV)
        if pgid_file:
            with open(pgid_file, "a") as f:
                f.write(f"{self.proc.pid}\n")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self, tail: int = 3000) -> str:
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the leader (a warm shutdown), then SIGKILL the whole group."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        kill_group(self.proc.pid)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if self.log is not subprocess.DEVNULL:
            self.log.close()  # type: ignore[union-attr]
        return self.proc.returncode


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_kib(pid: int) -> int:
    """Resident set size of one process, in KiB (0 if gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(pid: int) -> dict[str, int]:
    pids = process_tree(pid)
    return {"main_kib": rss_kib(pid), "total_kib": sum(rss_kib(p) for p in pids),
            "processes": len(pids)}


# --- results --------------------------------------------------------------------------


def emit(result: dict[str, Any]) -> None:
    """Print the one result line the driver reads from a side's stdout."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def parse_result(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            value: dict[str, Any] = json.loads(line[len(RESULT_PREFIX):])
            return value
    return None


def run_side(main: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Entry point of a side process: read the JSON spec in argv[1], run it, print the
    result. SIGTERM turns into SystemExit so ``finally`` blocks stop the workers."""

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, on_term)
    spec = json.loads(sys.argv[1])
    try:
        result = main(spec)
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which goes on
        import traceback

        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    emit(result)


def with_database(url: str, name: str) -> str:
    """``url`` naming database ``name`` instead."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def in_scratch_database(name: str, keep: bool, run: Callable[[], int]) -> int:
    """Run ``run()`` (a bench script's body) on a fresh database ``name`` on the server of
    ``DATABASE_URL``, with the demo project's settings; drop it afterwards unless
    ``keep``. Returns ``run``'s exit status (2 without ``DATABASE_URL``)."""
    server = os.environ.get("DATABASE_URL")
    if not server:
        print("DATABASE_URL is not set (run through djq.contrib.embedded, or set it)",
              file=sys.stderr)
        return 2
    import psycopg

    admin_url = with_database(server, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = with_database(server, name)
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ["DJANGO_SETTINGS_MODULE"] = "demo_project.settings"
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        return run()
    finally:
        from django.db import connections

        connections.close_all()
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
