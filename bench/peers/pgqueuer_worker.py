"""A pgqueuer worker started from Python (pgqueuer 1.6's ``pgq run`` breaks with the newest
typer): ``python -m bench.peers.pgqueuer_worker DSN BATCH_SIZE``. One process runs one
QueueManager on one asyncpg connection (pgqueuer's primary driver); the bench starts two,
one per core.

Not psycopg's: with pgqueuer 1.6's PsycopgDriver the connection's ``notifies(timeout=1.0)``
holds the connection while nothing arrives, so an idle worker's queries wait up to 1 s
(sequential round trips took 2-3 s each in our runs)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.models import Job

from bench.common import send_stamp


async def main(dsn: str, batch_size: int) -> None:
    conn = await asyncpg.connect(dsn)
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint("noop")
    async def noop(job: Job) -> None:
        return None

    @qm.entrypoint("stamp")
    async def stamp(job: Job) -> None:
        send_stamp("start", (job.payload or b"").decode())

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, qm.shutdown.set)
    await qm.verify_structure()  # run() checks again; done first so "ready" is not early
    send_stamp("ready", f"pgqueuer-{os.getpid()}")
    try:
        await qm.run(batch_size=batch_size)
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
