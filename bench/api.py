"""HTTP API throughput and latency (a benchmark, not a test).

Starts `ledgerflow serve` on PostgreSQL (API only: `--no-worker --no-relay
--no-projector`, so the server process does the same kind of work as the
baseline) and, in the same run, a bare FastAPI app on uvicorn whose one route
does one SELECT of a run_views row on the same database. Measures, with 1 and
16 concurrent loopback clients: `POST /api/runs` (trigger) and
`GET /api/runs/{id}` requests/s, p50/p99 latency, and the ratio of each to the
bare endpoint's rate at the same concurrency.

Run with `bash bench/run api`. Ends with `BENCH <figure> <value>` lines.
This file is also the `--workflows` module of the served process (`bench.noop`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ledgerflow import Context, workflow

HERE = Path(__file__).resolve().parent
SERVER = os.environ.get("LEDGERFLOW_BENCH_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/ledgerflow_bench")
DBNAME = "ledgerflow_bench_api"
DURATION_S = float(os.environ.get("LEDGERFLOW_BENCH_API_SECONDS", "5"))


@workflow("bench.noop")
def noop(ctx: Context, input: Any) -> Any:
    """The workflow the trigger benchmark starts (never executed: no worker)."""
    return input


def bare_app() -> Any:
    """The baseline: FastAPI, one sync route, one SELECT on the same database."""
    import sqlalchemy as sa
    from fastapi import FastAPI
    from fastapi.responses import Response

    from ledgerflow.eventstore import create_engine

    engine = create_engine(os.environ["LEDGERFLOW_DATABASE_URL"])
    query = sa.text("SELECT run_id, workflow_id, status, input, created_at FROM run_views "
                    "WHERE run_id = :id")
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/bare/{run_id}")
    def bare(run_id: str) -> Response:
        import orjson

        with engine.connect() as conn:
            row = conn.execute(query, {"id": run_id}).first()
        body = {"id": row[0], "workflowId": row[1], "status": row[2], "input": row[3],
                "createdAt": row[4].isoformat() if row else None} if row else {}
        return Response(orjson.dumps(body), media_type="application/json")

    return app


def fresh_database() -> str:
    from ledgerflow.eventstore.database import create_database

    return create_database(SERVER, DBNAME, replace=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    import httpx

    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{args[:4]} exited with {process.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{args[:4]} did not start")


async def load(url: str, method: str, body: Any, clients: int) -> dict[str, float]:
    """`clients` loops sending requests for DURATION_S (after a short warm-up)."""
    import httpx

    latencies: list[float] = []
    errors = 0

    async def client(http: httpx.AsyncClient, until: float, record: bool) -> None:
        nonlocal errors
        while (now := time.perf_counter()) < until:
            response = await http.request(method, url, json=body)
            if response.status_code >= 300:
                errors += 1
            if record:
                latencies.append(time.perf_counter() - now)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        warm = time.perf_counter() + 0.5
        await asyncio.gather(*(client(http, warm, False) for _ in range(clients)))
        began = time.perf_counter()
        await asyncio.gather(*(client(http, began + DURATION_S, True) for _ in range(clients)))
        elapsed = time.perf_counter() - began
    if errors:
        raise SystemExit(f"{method} {url}: {errors} error responses")
    ordered = sorted(latencies)
    return {"rps": len(latencies) / elapsed, "p50_ms": statistics.median(ordered) * 1000,
            "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000}


def main() -> None:
    import httpx

    url = fresh_database()
    # bench/ for this module (the workflow and the bare app), after the repo root so
    # the packages win over bench/'s same-named scripts (bench/projections.py).
    env = {**os.environ, "LEDGERFLOW_DATABASE_URL": url,
           "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)]),
           "LEDGERFLOW_WORKFLOWS": "api", "LEDGERFLOW_SINK_PATH": os.devnull}
    api_port, bare_port = free_port(), free_port()
    serve = start([sys.executable, "-m", "ledgerflow.cli", "serve", "--port", str(api_port),
                   "--no-worker", "--no-relay", "--no-projector"], env, api_port)
    bare_code = ("import uvicorn, api\n"
                 f"uvicorn.run(api.bare_app(), host='127.0.0.1', port={bare_port}, "
                 "log_level='warning', access_log=False, lifespan='off')")
    bare = start([sys.executable, "-c", bare_code], env, bare_port)
    try:
        api = f"http://127.0.0.1:{api_port}"
        run_id = httpx.post(f"{api}/api/runs", json={"workflowId": "bench.noop",
                                                      "input": {"n": 1}}).json()["id"]
        results: dict[str, dict[int, dict[str, float]]] = {"bare": {}, "get": {}, "trigger": {}}
        for clients in (1, 16):
            results["bare"][clients] = asyncio.run(load(
                f"http://127.0.0.1:{bare_port}/bare/{run_id}", "GET", None, clients))
            results["get"][clients] = asyncio.run(load(
                f"{api}/api/runs/{run_id}", "GET", None, clients))
            results["trigger"][clients] = asyncio.run(load(
                f"{api}/api/runs", "POST", {"workflowId": "bench.noop", "input": {"n": 1}},
                clients))
    finally:
        for process in (serve, bare):
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    report(results)


def report(results: dict[str, dict[int, dict[str, float]]]) -> None:
    print(f"{'route':<28}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs bare':>9}")
    for name, label in (("bare", "bare SELECT endpoint"), ("get", "GET /api/runs/{id}"),
                        ("trigger", "POST /api/runs (trigger)")):
        for clients, r in results[name].items():
            ratio = r["rps"] / results["bare"][clients]["rps"]
            print(f"{label:<28}{clients:>8}{r['rps']:>10.0f}{r['p50_ms']:>9.2f}"
                  f"{r['p99_ms']:>9.2f}{ratio:>9.2f}")
    bare = results["bare"][16]["rps"]
    print(f"BENCH api_trigger_vs_bare {results['trigger'][16]['rps'] / bare:.2f}")
    print(f"BENCH api_get_vs_bare {results['get'][16]['rps'] / bare:.2f}")
    print(f"BENCH api_get_p99_ms {results['get'][16]['p99_ms']:.2f}")


if __name__ == "__main__":
    main()
