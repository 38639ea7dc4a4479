"""A few requests over a real loopback socket (uvicorn in a thread): auth, a streamed
body over the limit, trigger and read back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from ledgerflow._app import Ledgerflow
from ledgerflow.api import create_app
from ledgerflow.settings import Settings
from tests._broker import free_port
from tests.api.conftest import ACME, TOKENS


@pytest.fixture
def base_url(lf: Ledgerflow, settings: Settings) -> Iterator[str]:
    port = free_port()
    app = create_app(lf, settings.model_copy(update={"api_tokens": TOKENS}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_trigger_and_read_over_a_socket(base_url: str, lf: Ledgerflow) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/api/runs").status_code == 401
        created = http.post("/api/runs", json={"workflowId": "greet", "input": "sock"},
                            headers=ACME)
        assert created.status_code == 201
        lf.engine.run_due()
        run = http.get(f"/api/runs/{created.json()['id']}", headers=ACME).json()
        assert (run["status"], run["result"]) == ("completed", "hello sock")


def test_a_streamed_body_over_the_limit_is_413(base_url: str, lf: Ledgerflow) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"workflowId": "greet", "input": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    with httpx.Client(base_url=base_url, timeout=10) as http:
        response = http.post("/api/runs", content=chunks(),
                             headers={**ACME, "content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    with lf.db.connect() as conn:
        from ledgerflow.projections import queries
        assert queries.list_runs(conn)[0] == []
