"""`ledgerflow serve` as a process: API + worker + relay + projector; SIGTERM stops it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine as SAEngine

from tests._broker import create_topics, free_port, read_topic
from tests.cli.conftest import ROOT, cli_env
from tests.outbox._support import header


class Served:
    def __init__(self, process: subprocess.Popen[str], base_url: str) -> None:
        self.process, self.base_url = process, base_url
        self.http = httpx.Client(base_url=base_url, timeout=10)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.communicate()
            try:
                if self.http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("serve did not answer /healthz")

    def run_until_terminal(self, workflow_id: str, input: Any) -> dict[str, Any]:
        created = self.http.post("/api/runs", json={"workflowId": workflow_id, "input": input})
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run: dict[str, Any] = self.http.get(f"/api/runs/{created.json()['id']}").json()
            if run["status"] in ("completed", "failed", "canceled"):
                return run
            time.sleep(0.1)
        raise AssertionError(f"run {created.json()['id']} did not finish")

    def terminate(self) -> int:
        self.http.close()
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def start_serve(env: dict[str, str], *flags: str) -> Iterator[Served]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ledgerflow.cli", "serve", "--port", str(port), "--threads", "2",
         "--poll-interval", "0.1", *flags], env=env, cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    served = Served(process, f"http://127.0.0.1:{port}")
    try:
        served.wait_ready()
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def serve_pg(pg_engine: SAEngine, pg_url: str, tmp_path: Path) -> Iterator[Served]:
    yield from start_serve(cli_env(pg_url, tmp_path))


def test_serve_runs_a_triggered_workflow_and_stops_on_sigterm(serve_pg: Served,
                                                              tmp_path: Path) -> None:
    run = serve_pg.run_until_terminal("greet", "served")
    assert (run["status"], run["result"]) == ("completed", "hello served")
    deadline = time.monotonic() + 30
    sink = tmp_path / "events.jsonl"
    while time.monotonic() < deadline and (
            not sink.exists() or len(sink.read_text().splitlines()) < 4):
        time.sleep(0.1)
    assert run["id"] in sink.read_text()  # the relay wrote the run's events to the sink
    assert serve_pg.terminate() == 0
    out, err = serve_pg.process.communicate()
    assert "Traceback" not in err
    assert "with api, worker (2 threads), relay, projector" in out


def test_serve_relays_to_the_kafka_broker(pg_engine: SAEngine, pg_url: str, tmp_path: Path,
                                          kafka_bootstrap: str) -> None:
    topic = f"serve-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, [topic, f"{topic}.dlq"])
    env = cli_env(pg_url, tmp_path, LEDGERFLOW_KAFKA_BOOTSTRAP=kafka_bootstrap,
                  LEDGERFLOW_TOPIC=topic, LEDGERFLOW_DLQ_TOPIC=f"{topic}.dlq")
    for served in start_serve(env):
        run = served.run_until_terminal("greet", "kafka")
        assert run["status"] == "completed"
        records = read_topic(kafka_bootstrap, topic, expected=4)
        mine = [r for r in records if header(r, "run-id") == run["id"]]
        assert [header(r, "event-type") for r in mine] == [
            "RunCreated", "RunStarted", "StepCompleted", "RunCompleted"]
        assert served.terminate() == 0
