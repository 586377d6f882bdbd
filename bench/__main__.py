"""``python -m bench``: djq beside Celery 5 on Redis and pgqueuer on the same PostgreSQL.

The driver runs no queue code itself: each workload of each system runs in a side process
(``bench.djq_side`` in this virtualenv; ``bench.peers.*_side`` in bench/.venv-peers, which
the driver creates on first use), which starts its workers, measures, stops them and prints
one JSON line. Every process is started in a process group of its own and every group is
killed at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench import report
from bench.common import PGID_FILE_ENV, ROOT, kill_group, parse_result

BENCH = ROOT / "bench"
PEERS_VENV = BENCH / ".venv-peers"
PEERS_REQUIREMENTS = ["celery[redis]>=5.4,<6", "pgqueuer==1.6.*", "psycopg[binary]", "asyncpg"]
RESULTS = BENCH / "results"
#: djq's concurrency for the W2 `-c 20` rows, W4, W6 and the memory test: as many tasks in
#: flight as pgqueuer's two processes with dequeue batch size 10.
IN_FLIGHT = 20

ALL_WORKLOADS = ["W1", "W1b", "W2", "W3", "W5", "W6", "W4", "BEAT", "MEM"]
ALL_SYSTEMS = ["djq", "celery", "pgqueuer"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=None, help="tasks per W1/W1b/W2/W4 run "
                   "(default 20000; 200 with --smoke)")
    p.add_argument("--rounds", type=int, default=None, help="rounds per workload (default 3)")
    p.add_argument("--only", default=None,
                   help="systems, comma-separated: djq,celery,pgqueuer (default all; "
                        "djq only with --smoke)")
    p.add_argument("--workloads", default=None,
                   help=f"comma-separated, from {','.join(ALL_WORKLOADS)} (default all)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes, one round, djq only unless --only says otherwise; "
                        "writes no bench/results/latest.* (for the test suite)")
    p.add_argument("--json", default=None, help="also write the JSON results here")
    p.add_argument("--memory-tasks", type=int, default=None,
                   help="tasks for the memory test's second point (default 1000000; "
                        "--memory-seconds usually ends it first)")
    p.add_argument("--history-rows", type=int, default=None,
                   help="finished rows for W4a (default 1000000)")
    p.add_argument("--parked-rows", type=int, default=None,
                   help="queued rows for W4b (default 200000)")
    p.add_argument("--latency-tasks", type=int, default=None, help="W3 tasks (default 300)")
    p.add_argument("--round-trips", type=int, default=None, help="W5 calls (default 500)")
    p.add_argument("--time-cap", type=float, default=None,
                   help="seconds one W1 or W5 run may take; it then stops and reports the "
                        "rate over what it did (default 3)")
    p.add_argument("--w4-rounds", type=int, default=None,
                   help="rounds of each W4 variant (default: --rounds, at most 2, to fit "
                        "the 10-minute budget)")
    p.add_argument("--memory-seconds", type=float, default=None,
                   help="at most this long for the memory test, which runs after the first "
                        "round; it reports the task count it reached (default 60)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for the whole run: runs that would start after it are "
                        "skipped and said so (default 560; none with --smoke)")
    p.add_argument("--pgqueuer-batch-size", type=int, default=10,
                   help="pgqueuer's dequeue batch size (its default: 10)")
    p.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL",
                                                         "redis://127.0.0.1:6379/11"),
                   help="Redis database for Celery; it is flushed (default db 11)")
    p.add_argument("--peer-events", action="store_true",
                   help="also run W6 for Celery (-E); off by default to fit the budget: the "
                        "target is djq's W6 against djq's own W2")
    p.add_argument("--beat-schedules", type=int, default=None,
                   help="periodic tasks for BEAT (default 10000; 300 with --smoke)")
    p.add_argument("--keep-databases", action="store_true",
                   help="do not drop the bench databases at the end")
    args = p.parse_args(argv)
    smoke = args.smoke
    defaults = {
        "size": 200 if smoke else 20_000, "rounds": 1 if smoke else 3,
        "memory_tasks": 600 if smoke else 1_000_000, "history_rows": 5_000 if smoke else 1_000_000,
        "parked_rows": 1_000 if smoke else 200_000, "latency_tasks": 30 if smoke else 300,
        "round_trips": 30 if smoke else 500, "time_cap": 3.0, "budget": None if smoke else 560.0,
        "memory_seconds": 120.0 if smoke else 60.0,
        "beat_schedules": 300 if smoke else 10_000,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.w4_rounds is None:
        args.w4_rounds = min(args.rounds, 2)
    args.systems = [s.strip() for s in (args.only or ("djq" if smoke else ",".join(ALL_SYSTEMS)))
                    .split(",") if s.strip()]
    for s in args.systems:
        if s not in ALL_SYSTEMS:
            p.error(f"unknown system {s!r}: use {','.join(ALL_SYSTEMS)}")
    names = {w.lower(): w for w in ALL_WORKLOADS}
    chosen = [w.strip() for w in (args.workloads or ",".join(ALL_WORKLOADS)).split(",")
              if w.strip()]
    for w in chosen:
        if w.lower() not in names:
            p.error(f"unknown workload {w!r}: use {','.join(ALL_WORKLOADS)}")
    args.workload_list = [names[w.lower()] for w in chosen]
    return args


def with_dbname(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.monotonic()
        self.setup_seconds = 0.0  # time spent creating the peers' virtualenv (not budgeted)
        self.logs = Path(tempfile.mkdtemp(prefix="djq-bench-"))
        self.pgid_file = self.logs / "pgids"
        self.pgid_file.touch()
        os.environ[PGID_FILE_ENV] = str(self.pgid_file)
        self.results: report.Results = {}
        self.notes: list[str] = []
        self.server_url = ""
        self.djq_url = ""
        self.pgq_url = ""
        suffix = f"_smoke_{os.getpid()}" if args.smoke else ""
        self.djq_db = f"djq_bench{suffix}"
        self.pgq_db = f"pgqueuer_bench{suffix}"
        # W4's preloaded rows live in databases of their own, loaded once, so W4 rounds
        # can run in the same rounds as W2.
        self.w4_dbs = {"W4a": f"djq_bench_w4a{suffix}", "W4b": f"djq_bench_w4b{suffix}"}
        self.w4_urls: dict[str, str] = {}
        self.unavailable: dict[str, str] = {}
        self.peers_python = str(PEERS_VENV / "bin" / "python")
        self.versions: dict[str, Any] = {}
        self.load_start = os.getloadavg()

    # -- time --------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.started - self.setup_seconds

    def left(self) -> float:
        if self.args.budget is None:
            return float("inf")
        return float(self.args.budget) - self.elapsed()

    def log(self, message: str) -> None:
        print(f"[{self.elapsed():6.1f}s] {message}", file=sys.stderr, flush=True)

    # -- set-up ------------------------------------------------------------------------
    def database_url(self) -> str:
        url = os.environ.get("DATABASE_URL")
        if url:
            return url
        from djq.contrib import embedded  # keeps the server up while this process lives

        return embedded.database_url(ROOT / ".djq")

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(with_dbname(self.server_url, "postgres"), autocommit=True) as c:
            c.execute(sql)

    def prepare_databases(self) -> None:
        self.server_url = self.database_url()
        self.djq_url = with_dbname(self.server_url, self.djq_db)
        self.pgq_url = with_dbname(self.server_url, self.pgq_db)
        os.environ["BENCH_DJQ_DATABASE_URL"] = self.djq_url
        os.environ.setdefault("DATABASE_URL", self.server_url)
        djq_dbs = [self.djq_db]
        if "W4" in self.args.workload_list and "djq" in self.args.systems:
            self.w4_urls = {w: with_dbname(self.server_url, name)
                            for w, name in self.w4_dbs.items()}
            djq_dbs += list(self.w4_dbs.values())
        databases = djq_dbs + ([self.pgq_db] if "pgqueuer" in self.args.systems else [])
        for name in databases:
            self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.admin(f'CREATE DATABASE "{name}"')
        for name in djq_dbs:
            out = subprocess.run(
                [sys.executable, str(ROOT / "manage.py"), "migrate", "--settings",
                 "bench.settings", "-v", "0"], check=False, cwd=ROOT,
                env=self.djq_env(with_dbname(self.server_url, name)), capture_output=True,
                text=True, timeout=180,
            )
            if out.returncode:
                raise RuntimeError(f"migrate {name} failed:\n{out.stdout}\n{out.stderr}")
        self.log(f"databases {', '.join(databases)} ready on {self.server_url}")

    def drop_databases(self) -> None:
        if self.args.keep_databases or not self.server_url:
            return
        for name in (self.djq_db, self.pgq_db, *self.w4_dbs.values()):
            try:
                self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # noqa: BLE001 - clean-up only
                self.log(f"could not drop {name}: {exc}")

    def ensure_peers_venv(self) -> None:
        stamp = PEERS_VENV / ".bench-requirements"
        wanted = "\n".join(PEERS_REQUIREMENTS)
        if stamp.exists() and stamp.read_text() == wanted and Path(self.peers_python).exists():
            return
        t0 = time.monotonic()
        self.log(f"creating {PEERS_VENV.relative_to(ROOT)} (first use): "
                 + " ".join(PEERS_REQUIREMENTS))
        with open(self.logs / "venv-peers.log", "w") as log:
            if not Path(self.peers_python).exists():
                base = getattr(sys, "_base_executable", sys.executable)
                subprocess.run([base, "-m", "venv", str(PEERS_VENV)], check=True, stdout=log,
                               stderr=subprocess.STDOUT, timeout=300)
            subprocess.run([self.peers_python, "-m", "pip", "install", "--quiet",
                            *PEERS_REQUIREMENTS], check=True, stdout=log,
                           stderr=subprocess.STDOUT, timeout=600)
        stamp.write_text(wanted)
        self.setup_seconds += time.monotonic() - t0
        self.log(f"peers' virtualenv ready in {time.monotonic() - t0:.0f}s (not in the budget)")

    def prepare_peers(self) -> None:
        peers = [s for s in self.args.systems if s != "djq"]
        if not peers:
            return
        try:
            self.ensure_peers_venv()
        except Exception as exc:  # noqa: BLE001 - the bench goes on with djq alone
            for s in peers:
                self.unavailable[s] = f"peers' virtualenv failed: {exc}"
            return
        if "celery" in peers:
            r = self.side("celery", {"workload": "check"}, timeout=60)
            if "error" in r:
                self.unavailable["celery"] = f"Redis at {self.args.redis_url}: {r['error']}"
            else:
                self.versions["celery"] = r.get("version")
        if "pgqueuer" in peers:
            r = self.side("pgqueuer", {"workload": "install"}, timeout=120)
            if "error" in r:
                self.unavailable["pgqueuer"] = f"install failed: {r['error']}"
            else:
                self.versions["pgqueuer"] = r.get("version")
        for s, why in self.unavailable.items():
            self.log(f"{s} unavailable: {why}")
            self.notes.append(f"{s} not measured: {why}")

    # -- side processes ----------------------------------------------------------------
    def djq_env(self, db: str | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["DJANGO_SETTINGS_MODULE"] = "bench.settings"
        env["BENCH_DJQ_DATABASE_URL"] = db or self.djq_url
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def side(self, system: str, spec: dict[str, Any], timeout: float = 300,
             db: str | None = None) -> dict[str, Any]:
        label = f"{spec['workload']}-{len(list(self.logs.iterdir()))}"
        spec = {"log_dir": str(self.logs), "label": label, **spec}
        if self.args.budget is not None and "timeout" in spec:
            # A hung or broken system must not take the run past its budget.
            spec["timeout"] = max(20.0, min(float(spec["timeout"]), self.left()))
            timeout = min(timeout, spec["timeout"] + 60)
        if system == "djq":
            argv = [sys.executable, "-m", "bench.djq_side", json.dumps(spec)]
            env = self.djq_env(db)
        else:
            spec.setdefault("dsn", self.pgq_url)
            spec.setdefault("batch_size", self.args.pgqueuer_batch_size)
            argv = [self.peers_python, "-m", f"bench.peers.{system}_side", json.dumps(spec)]
            env = {k: v for k, v in os.environ.items()
                   if k not in ("DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV", "PYTHONPATH")}
            env["BENCH_REDIS_URL"] = self.args.redis_url
            env["PYTHONUNBUFFERED"] = "1"
        err_path = self.logs / f"side-{system}-{label}.log"
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=err, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            with open(self.pgid_file, "a") as f:
                f.write(f"{proc.pid}\n")
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)  # the side stops its workers in `finally`
                try:
                    proc.communicate(timeout=20)
                except subprocess.TimeoutExpired:
                    pass
                kill_group(proc.pid)
                proc.wait()
                return {"error": f"timed out after {timeout:.0f}s (log {err_path})"}
        result = parse_result(out.decode(errors="replace"))
        if result is None:
            tail = err_path.read_text(errors="replace")[-1500:]
            return {"error": f"exit {proc.returncode}, no result; log {err_path}: {tail}"}
        if "error" in result:
            result["error"] += f" (log {err_path})"
        return result

    # -- workloads ---------------------------------------------------------------------
    def record(self, workload: str, system: str, result: dict[str, Any]) -> None:
        self.results.setdefault(workload, {}).setdefault(system, []).append(result)
        shown = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in result.items()
                 if k in ("value", "p50", "p99", "n", "complete", "na", "error", "skipped")}
        self.log(f"{workload:4} {system:12} {shown}")

    def run_one(self, workload: str, key: str, system: str, spec: dict[str, Any],
                timeout: float, min_left: float, db: str | None = None) -> None:
        if system in self.unavailable:
            self.record(workload, key, {"skipped": self.unavailable[system]})
        elif self.left() < min_left:
            self.record(workload, key, {"skipped": "time budget"})
        else:
            self.record(workload, key, self.side(system, spec, timeout, db=db))

    def run(self) -> None:
        """Round-major: round 1 of every workload, then the memory test, then round 2 of
        every workload, and so on. Within a round each workload runs every system once, in
        an order rotated from round to round. When the budget runs short, every workload
        already has its first round."""
        a = self.args
        n = a.size
        drain = 240.0  # seconds a drain may take before it is reported as not drained
        chosen = set(a.workload_list)
        has_djq = "djq" in a.systems

        def keys(*names: str) -> list[tuple[str, str]]:
            return [(k, k.split("-")[0]) for k in names if k.split("-")[0] in a.systems]

        plan: list[tuple[str, list[tuple[str, str]], dict[str, Any], float, float,
                         str | None]] = []
        if "W1" in chosen:
            plan.append(("W1", keys("djq", "celery", "pgqueuer"),
                         {"workload": "w1", "n": n, "time_cap": a.time_cap}, 120, 15, None))
        if "W1b" in chosen:
            plan.append(("W1b", keys("djq", "celery", "pgqueuer"),
                         {"workload": "w1b", "n": n}, 180, 30, None))
        if "W2" in chosen:
            plan.append(("W2", keys("djq", "djq-c20", "djq-threads", "celery", "pgqueuer"),
                         {"workload": "w2", "n": n, "timeout": drain,
                          "template": str(self.logs / "celery-w2-template.json")},
                         drain + 120, 40, None))
        if "W3" in chosen:
            plan.append(("W3", keys("djq", "celery", "pgqueuer"),
                         {"workload": "w3", "n": a.latency_tasks, "gap": 0.01}, 120, 15, None))
        if "W3" in chosen and has_djq:  # djq behind PgBouncer (transaction mode)
            plan.append(("W3P", [("djq-pgb-listen", "djq"), ("djq-pgb-poll", "djq")],
                         {"workload": "w3_pooled", "n": a.latency_tasks, "gap": 0.01}, 120,
                         15, None))
        if "W5" in chosen:
            plan.append(("W5", keys("djq", "celery", "pgqueuer"),
                         {"workload": "w5", "n": a.round_trips, "time_cap": a.time_cap}, 120,
                         15, None))
        if "W6" in chosen:
            w6 = keys("djq", "djq-c20", "celery", "pgqueuer")
            import importlib.util

            if has_djq and importlib.util.find_spec("djq.events") is None:
                # Nothing to compare with: the peers' -E runs are not worth their minutes.
                self.record("W6", "djq", {"na": "events not implemented; -E is accepted "
                                                "and ignored"})
                w6 = []
            if has_djq and not a.peer_events:
                for key, _ in keys("celery", "pgqueuer"):
                    self.record("W6", key, {"skipped": "peers' -E only with --peer-events"})
                w6 = [kv for kv in w6 if kv[1] == "djq"]
            if w6:
                plan.append(("W6", w6, {"workload": "w6", "n": n, "timeout": drain},
                             drain + 120, 40, None))
        if "W4" in chosen and has_djq:
            for w, variant, rows in (("W4a", "history", a.history_rows),
                                     ("W4b", "parked", a.parked_rows)):
                db = self.w4_urls[w]
                pre = self.side("djq", {"workload": "w4_preload", "variant": variant,
                                        "rows": rows}, 300, db=db)
                if "error" in pre:
                    self.record(w, "djq", pre)
                    continue
                self.log(f"{w}: {pre['rows']:,} {variant} rows loaded in {pre['seconds']:.1f}s")
                if w == "W4a":  # the metrics endpoint's work over those rows
                    self.record("SCRAPE", "djq", self.side("djq", {"workload": "scrape"},
                                                           120, db=db))
                plan.append((w, [("djq", "djq")], {"workload": "w4", "n": n, "timeout": drain,
                                                    "concurrency": IN_FLIGHT},
                             drain + 120, 40, db))
        if "BEAT" in chosen and has_djq:  # one round: the figures are not rates to compare
            smoke = a.smoke
            plan.append(("BEAT", [("djq", "djq")], {
                "workload": "beat", "schedules": a.beat_schedules,
                "idle_seconds": 2.0 if smoke else 10.0, "load_seconds": 5.0 if smoke else 15.0,
                "every": 5.0 if smoke else 60.0}, 120, 40, None))
        for rnd in range(a.rounds):
            for workload, systems, spec, timeout, min_left, target_db in plan:
                if workload in ("W4a", "W4b") and rnd >= a.w4_rounds:
                    continue
                if workload == "BEAT" and rnd >= 1:
                    continue
                k = rnd % len(systems)
                for key, system in systems[k:] + systems[:k]:
                    item = dict(spec)
                    if key == "djq-c20":
                        item.update(pool="prefork", concurrency=IN_FLIGHT)
                    elif key == "djq-threads":
                        item.update(pool="threads", concurrency=IN_FLIGHT)
                    elif key == "djq-pgb-listen":
                        item.update(listen=True)
                    self.run_one(workload, key, system, item, timeout, min_left, target_db)
            if rnd == 0 and "MEM" in chosen and has_djq:
                self.run_memory()

    def run_memory(self) -> None:
        a = self.args
        timeout = min(a.memory_seconds, self.left() - 10)
        if timeout < 20:
            self.record("MEM", "djq", {"skipped": "time budget"})
            return
        first = min(10_000, max(1, a.memory_tasks // 2))
        self.record("MEM", "djq", self.side("djq", {"workload": "memory", "first": first,
                                                    "total": a.memory_tasks,
                                                    "concurrency": IN_FLIGHT,
                                                    "timeout": timeout}, timeout + 60))

    # -- clean-up ----------------------------------------------------------------------
    def kill_everything(self) -> None:
        try:
            pgids = {int(x) for x in self.pgid_file.read_text().split()}
        except (OSError, ValueError):
            pgids = set()
        for pgid in pgids:
            kill_group(pgid)


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{os.cpu_count()} cores ({cpu}), {mem} RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    wall = time.monotonic()
    status = 0

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        bench.log(f"logs in {bench.logs}")
        bench.prepare_databases()
        bench.prepare_peers()
        bench.run()
    except (Exception, KeyboardInterrupt, SystemExit) as exc:  # noqa: BLE001 - report anyway
        bench.log(f"bench stopped early: {type(exc).__name__}: {exc}")
        bench.notes.append(f"bench stopped early: {type(exc).__name__}: {exc}")
        status = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
    finally:
        bench.kill_everything()
        bench.drop_databases()
    meta = build_meta(bench, time.monotonic() - wall)
    md = None if args.smoke else RESULTS / "latest.md"
    js = None if args.smoke else RESULTS / "latest.json"
    text = report.write(bench.results, meta, md, js)
    if args.json:
        report.write(bench.results, meta, None, Path(args.json))
    print(text)
    bench.log(f"done in {time.monotonic() - wall:.0f}s; logs in {bench.logs}")
    return status


def build_meta(bench: Bench, seconds: float) -> dict[str, Any]:
    import djq

    a = bench.args
    try:
        pg = _server_version(bench)
    except Exception:  # noqa: BLE001
        pg = "?"
    setup = [f"PostgreSQL {pg}" + (", one server for djq and pgqueuer" if "pgqueuer" in
                                   a.systems else "") + f" (database `{bench.djq_db}`"
             + (f" and `{bench.pgq_db}`" if "pgqueuer" in a.systems else "") + ")",
             f"djq {djq.__version__} from the work tree"]
    if "celery" in a.systems:
        setup.append(f"Celery {bench.versions.get('celery', '?')} on Redis at {a.redis_url} "
                     "(broker and result backend; flushed)")
    if "pgqueuer" in a.systems:
        setup.append(f"pgqueuer {bench.versions.get('pgqueuer', '?')} (asyncpg driver, "
                     f"dequeue batch size {a.pgqueuer_batch_size})")
    notes = [
        "; ".join(setup) + ".",
        (f"W1 and W5 stop after {a.time_cap:g} s and report the rate over the calls made "
         "in that time."),
        ("W2/W4/W6: jobs per second from the moment the worker says it is ready (its "
         "worker_ready signal; for pgqueuer the later of its two processes) to the moment a "
         "poller sees the last result stored: djq no row of the queue left unfinished; Celery "
         "every result key in Redis; pgqueuer its queue table empty (a job leaves it in the "
         "statement that logs it). Workers log at WARNING (Celery's default; djq's is INFO)."),
        ("W3: each task sends `time.time()` as its first act over UDP to the measuring "
         "process; latency = that minus `time.time()` just before `delay()`/`enqueue()`."),
        (f"W4a: {a.history_rows:,} SUCCESS rows (queue `history`, done in the last hour) in "
         f"djq_task; W4b: {a.parked_rows:,} waiting rows on queue `parked`, which the workers "
         "do not consume, so they stay queued. Each in a database of its own, loaded once "
         "and VACUUM ANALYZEd, so W4 runs in the same rounds as W2. djq only, prefork "
         f"`-c {IN_FLIGHT}`; ratio to djq's W2 prefork `-c {IN_FLIGHT}` median; at most "
         f"{a.w4_rounds} round(s). W6 runs at `-c 2` and at `-c {IN_FLIGHT}`, each against "
         f"the W2 row of its concurrency; the memory test runs prefork `-c {IN_FLIGHT}`, to "
         "get through more tasks in its time."),
        (f"BEAT (periodic tasks, issue 15; one round): {a.beat_schedules:,} periodic tasks "
         "in the database. Idle: the CPU of one `djq_beat` while none is due (its rounds "
         "read the due rows through the partial index `djq_periodic_due`). Firing: three "
         "`djq_beat` processes, every task due once a minute (every 5 s with --smoke) with "
         "the fire times spread evenly, for 15 s (5 s); their CPU together, and the fire delay from the fire time to the "
         "insert of the run's record (database clock), in the transaction that enqueues "
         "the task."),
        ("Order: round 1 of every workload, then the memory test (at most "
         f"{a.memory_seconds:g} s: the row says how many tasks it reached), then round 2, "
         "and so on; a run that would start past the budget is reported `not run (time "
         "budget)`."),
        ("The machine has 2 cores and may be shared: load average (1/5/15 min) "
         + "/".join(f"{x:.1f}" for x in bench.load_start) + " at the start, "
         + "/".join(f"{x:.1f}" for x in os.getloadavg()) + " at the end (the bench itself "
         "keeps about 1-2 busy). Figures are noisy; compare within one run."),
        f"Whole run: {seconds:.0f} s"
        + (f" plus {bench.setup_seconds:.0f} s creating bench/.venv-peers"
           if bench.setup_seconds else "") + f"; logs in {bench.logs}.",
    ]
    return {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "command": " ".join(["python -m bench", *map(shlex.quote, sys.argv[1:])])
        + (" (what `make bench` runs)" if not sys.argv[1:] else ""),
        "rounds": a.rounds, "size": a.size, "systems": a.systems,
        "workloads": a.workload_list, "seconds": round(seconds, 1),
        "peers_venv_seconds": round(bench.setup_seconds, 1),
        "versions": bench.versions, "notes": notes + bench.notes,
        "logs": str(bench.logs),
    }


def _server_version(bench: Bench) -> str:
    import psycopg

    with psycopg.connect(with_dbname(bench.server_url, "postgres")) as c:
        row = c.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"


if __name__ == "__main__":
    sys.exit(main())
