"""How async runs should reach the store: the sync store in threads, or psycopg's async
connection? Measured once to choose (see README "Async workflows"); not a BENCH figure.

2,000 one-row INSERT transactions issued at once from one event loop, 8 connections
either way: (a) `run_in_executor` on 8 threads, each with a sync psycopg connection
(what `AsyncLoop.io` does with the store); (b) 8 `psycopg.AsyncConnection`s shared
through an `asyncio.Queue`. Prints wall time and this process's CPU per transaction.

Run: `LEDGERFLOW_BENCH_DB=ledgerflow_bench_async bash bench/run async_io_choice`.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg

N, CONNS = 2000, 8
DSN = os.environ.get("LEDGERFLOW_BENCH_DATABASE_URL",
                     "postgresql://postgres@127.0.0.1:5432/ledgerflow_bench"
                     ).replace("postgresql+psycopg://", "postgresql://")


def setup() -> None:
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS io_choice")
        conn.execute("CREATE TABLE io_choice (id bigint, body jsonb)")


async def threads() -> None:
    local = threading.local()
    pool = ThreadPoolExecutor(CONNS)

    def insert(i: int) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = psycopg.connect(DSN)
        with conn.transaction():
            conn.execute("INSERT INTO io_choice VALUES (%s, %s)", (i, '{"a": 1}'))

    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(pool, insert, i) for i in range(N)))
    pool.shutdown()


async def native() -> None:
    conns: asyncio.Queue[psycopg.AsyncConnection] = asyncio.Queue()
    for _ in range(CONNS):
        conns.put_nowait(await psycopg.AsyncConnection.connect(DSN))

    async def insert(i: int) -> None:
        conn = await conns.get()
        try:
            async with conn.transaction():
                await conn.execute("INSERT INTO io_choice VALUES (%s, %s)", (i, '{"a": 1}'))
        finally:
            conns.put_nowait(conn)

    await asyncio.gather(*(insert(i) for i in range(N)))
    while not conns.empty():
        await (conns.get_nowait()).close()


def main() -> None:
    setup()
    for _ in range(2):
        for name, fn in (("threads + sync psycopg", threads), ("psycopg async", native)):
            cpu, wall = time.process_time(), time.perf_counter()
            asyncio.run(fn())
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(f"{name:<24} {N / wall:7.0f} tx/s  {cpu / N * 1e6:6.0f} us CPU/tx")


if __name__ == "__main__":
    main()
