"""The `workflows` bench's remote phase: the same 3-step workflow dispatched over HTTP
to a workflow handler (`ledgerflow.asgi_handler`) served by uvicorn on loopback, in a
process of its own; the worker (8 threads) runs in the bench process.

`WF_REMOTE_BUDGET` sets `LEDGERFLOW_DISPATCH_BUDGET_SECONDS` (default 1: one request
per run of this workflow; 0: one per step, as durable as an inline run).

Figures: `wf_remote_conc8_per_s` (8 clients: trigger eagerly, wait for the result) and
`wf_remote_vs_inline` (that over the inline conc8 figure of the same bench run).

The handler is started as `uvicorn --factory remote_dispatch:handler_app --app-dir
bench` with `LEDGERFLOW_DISPATCH_SECRET` set (a bench-only secret).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SECRET = "bench-dispatch-secret"


def handler_app() -> Any:
    """The handler's ASGI app (uvicorn's `--factory`): the `workflows` bench's `bench3`
    (its registry, imported from `bench/workflows.py` on uvicorn's `--app-dir`), mounted
    at /ledgerflow."""
    from fastapi import FastAPI
    from workflows import bench_registry

    from ledgerflow import asgi_handler

    app = FastAPI()
    app.mount("/ledgerflow", asgi_handler(bench_registry(), secret=SECRET))
    return app


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def start_handler() -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "remote_dispatch:handler_app",
         "--app-dir", str(Path(__file__).parent), "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log"], env=dict(os.environ))
    url = f"http://127.0.0.1:{port}/ledgerflow"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/workflows", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the bench's workflow handler did not start")


def bench_remote(url_db: str, engine_sa: Any, measure_median: Callable[..., dict[str, float]],
                 client: Callable[[Any], Callable[[int], None]], inline_per_s: float,
                 threads: int) -> dict[str, float]:
    """The remote conc8 figure and its ratio to `inline_per_s` (`client(engine)`: one
    client's call, as the inline phase makes it)."""
    from ledgerflow import Engine, Worker, WorkflowRegistry
    from ledgerflow._app import build_store
    from ledgerflow.remote import RemoteRuns
    from ledgerflow.settings import Settings

    process, url = start_handler()
    try:
        registry = WorkflowRegistry()
        dispatch = RemoteRuns.parse(f"bench3={url}", SECRET,
                                    budget=float(os.environ.get("WF_REMOTE_BUDGET", "1")))
        dispatch.register(registry)  # bench3 is not imported here: learned from the handler
        store = build_store(engine_sa, Settings(database_url=url_db))
        engine = Engine(store, registry, dispatch=dispatch)
        worker = Worker(engine, threads=threads, poll_interval=1.0).start()
        one = client(engine)
        for i in range(40):
            one(i)
        remote = measure_median("ledgerflow remote conc8", one, 8)
        worker.stop()
        dispatch.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(f"remote conc8: {remote['per_s']:.1f}/s vs inline {inline_per_s:.1f}/s "
          f"= {remote['per_s'] / inline_per_s:.2f}")
    return {"wf_remote_conc8_per_s": remote["per_s"],
            "wf_remote_vs_inline": remote["per_s"] / inline_per_s}
