"""Many hosts: three worker "hosts", each in a network namespace of its own, reach
PostgreSQL only through PgBouncer (transaction mode) over a veth pair. One host's link is
cut mid-run (its veth taken down: packets vanish, nothing is closed) and later restored.

Loopback and these namespaces only. Needs root and ``ip netns``; skips, saying why,
where namespaces cannot be made. The test settings use a 4 s lease and 0.5 s heartbeats.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from djq import group, states
from djq.models import Task, Worker
from djq.status import Status
from tests.conftest import wait_for
from tests.testapp.tasks import count_run, count_run_late

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

LEASE = 4.0
HOSTS = 3
TASKS = 2000


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class Hosts:
    """``count`` namespaces ``djq<tag>h<i>``, each joined to the root namespace by a veth
    pair: 10.<net>.<i>.1 on the root side, 10.<net>.<i>.2 inside."""

    def __init__(self, count: int) -> None:
        tag = os.getpid() % 10000
        self.net = 100 + os.getpid() % 100
        self.names: list[str] = []
        self.links: list[str] = []
        try:
            for i in range(1, count + 1):
                ns, outer, inner = f"djq{tag}h{i}", f"dq{tag}h{i}", f"dq{tag}p{i}"
                _ip("netns", "add", ns)
                self.names.append(ns)
                _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
                self.links.append(outer)
                _ip("link", "set", inner, "netns", ns)
                _ip("addr", "add", f"10.{self.net}.{i}.1/24", "dev", outer)
                _ip("link", "set", outer, "up")
                _ip("-n", ns, "addr", "add", f"10.{self.net}.{i}.2/24", "dev", inner)
                _ip("-n", ns, "link", "set", inner, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def gateway(self, i: int) -> str:
        """The root side's address as host ``i`` (1-based) sees it: where PgBouncer is."""
        return f"10.{self.net}.{i}.1"

    def prefix(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", self.names[i - 1]]

    def cut(self, i: int) -> None:
        _ip("link", "set", self.links[i - 1], "down")

    def restore(self, i: int) -> None:
        _ip("link", "set", self.links[i - 1], "up")

    def close(self) -> None:
        for ns in self.names:  # deleting a namespace deletes its veth end, and the pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        for link in self.links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=10)


def namespaces_refused() -> str | None:
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"djq{os.getpid() % 10000}probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add was refused: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@pytest.fixture
def hosts() -> Any:
    reason = namespaces_refused()
    if reason:
        pytest.skip(reason)
    made = Hosts(HOSTS)
    yield made
    made.close()


@pytest.fixture
def bouncer(hosts: Hosts, django_db_setup: Any) -> Any:
    """PgBouncer on the root side of every veth pair (and loopback). A client cut off
    mid-transaction would keep that server transaction, and its locks, open: PgBouncer's
    ``idle_transaction_timeout`` ends it (docs/deployment.md says to set it)."""
    from tests.pgbouncer import PgBouncer, binary

    executable = binary()
    if executable is None:
        pytest.skip("PgBouncer is not installed (.ci/run installs it)")
    addresses = ",".join(["127.0.0.1", *(hosts.gateway(i) for i in range(1, HOSTS + 1))])
    made = PgBouncer(executable, pool_size=30, listen_addr=addresses,
                     extra="idle_transaction_timeout = 2")
    yield made
    made.close()


def runs(path: Path) -> Counter[str]:
    return Counter(path.read_text().split()) if path.exists() else Counter()


def key_of(row: Task) -> str:
    return row.args.split('"')[3]  # ["<path>", "<key>", seconds]


def in_flight(worker_id: int) -> set[str]:
    return {str(i) for i in Task.objects.filter(claimed_by=worker_id,
                                                status__in=[Status.CLAIMED, Status.STARTED])
            .values_list("id", flat=True)}


def test_a_host_cut_off_is_taken_over_and_rejoins(start_worker: Any, hosts: Hosts,
                                                  bouncer: Any, tmp_path: Path) -> None:
    path = tmp_path / "runs"
    workers = []
    for i in range(1, HOSTS + 1):
        workers.append(start_worker(
            "-c", "4", "-n", f"host{i}@test", "--without-beat", proxy=bouncer,
            env={"DJQ_TEST_DATABASE_HOST": hosts.gateway(i)}, prefix=hosts.prefix(i)))
    connected_at = time.monotonic()
    cut_worker = workers[0]
    old_id = int(Worker.objects.get(pid=cut_worker.pid, stopped_at__isnull=True).id)
    # Each host reaches the database through its veth only.
    assert Worker.objects.filter(stopped_at__isnull=True).count() == HOSTS
    # The others recover a dead worker's rows only after a full lease connected.
    time.sleep(max(0.0, LEASE + 0.5 - (time.monotonic() - connected_at)))

    sigs = [(count_run_late if i % 2 else count_run).s(str(path), f"t{i}", 0.005)
            for i in range(TASKS)]
    sent = group(sigs).apply_async()
    late = {r.id for i, r in enumerate(sent.results) if i % 2}
    wait_for(lambda: in_flight(old_id) and Task.objects.filter(status=Status.DONE).count() >= 200,
             timeout=60, message="host 1 to be running tasks, 200 done")
    hosts.cut(1)
    cut_at = time.monotonic()
    time.sleep(0.5)  # a statement sent just before the cut ends, one way or the other
    held = in_flight(old_id)  # what it can no longer write: claimed or running
    cut_db_time = Task.objects.raw("SELECT id, now() AS t FROM djq_task LIMIT 1")[0].t

    # Recovered by the others within the lease (plus the sweep's quarter lease).
    wait_for(lambda: not in_flight(old_id), timeout=LEASE * 1.25 + 10,
             message="host 1's tasks to be recovered")
    recovered_in = time.monotonic() - cut_at
    assert recovered_in <= LEASE * 1.25 + 2.5, recovered_in
    assert Worker.objects.get(id=old_id).stopped_at is not None

    time.sleep(2.0)
    hosts.restore(1)
    wait_for(lambda: "Continuing as worker id=" in cut_worker.output(), 60,
             message="host 1 to find its lease lost and start afresh")
    assert f"Lease of worker id={old_id} was lost" in cut_worker.output()
    new_id = int(Worker.objects.get(pid=cut_worker.pid, stopped_at__isnull=True).id)
    assert new_id != old_id

    wait_for(lambda: not Task.objects.exclude(status=Status.DONE).exists(), 180,
             message="every task to end")
    rows = {str(t.id): t for t in Task.objects.all()}
    assert len(rows) == TASKS
    counts = runs(path)
    for task_id, row in rows.items():
        key = key_of(row)
        assert row.state in states.READY_STATES
        if task_id in late:
            assert row.state == states.SUCCESS, row.result
            assert counts[key] >= 1
            if counts[key] > 1:  # run again only if host 1 held it when cut
                assert task_id in held, key
        else:
            assert counts[key] <= 1, f"{key} ran {counts[key]} times without acks_late"
            if row.state != states.SUCCESS:
                assert row.state == states.FAILURE and "WorkerLostError" in row.result
                assert task_id in held, (key, row.result)
    # Nothing claimed under the dead id after the cut, and nothing it held was written
    # by it afterwards: every row it held was finished by the recovery or another worker.
    assert not Task.objects.filter(claimed_by=old_id, date_claimed__gt=cut_db_time).exists()
    assert not Task.objects.filter(id__in=held, claimed_by=old_id, state=states.SUCCESS,
                                   date_done__gt=cut_db_time).exists()
    for worker in workers:
        assert worker.stop() == 0, worker.output()[-3000:]
