"""A workflow handler served by a real uvicorn process (`tests.remote.handler_app:app`),
and a `Ledgerflow` in this process whose runs of every workflow go to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Ledgerflow, Settings, WorkflowRegistry
from ledgerflow.domain.state import RunState
from tests._broker import free_port

SECRET = "test-dispatch-secret"
ROOT = Path(__file__).resolve().parents[2]


class HandlerProcess:
    """`uvicorn tests.remote.handler_app:app` on a loopback port; start, kill, start again."""

    def __init__(self, effects: Path, port: int | None = None,
                 app: str = "tests.remote.handler_app:app") -> None:
        self.port, self.app = port or free_port(), app
        self.effects = effects
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ledgerflow"

    def start(self) -> None:
        env = {**os.environ, "LEDGERFLOW_DISPATCH_SECRET": SECRET,
               "LEDGERFLOW_TEST_EFFECTS": str(self.effects), "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", self.app, "--host",
             "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            cwd=ROOT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/workflows", timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"the handler did not start on port {self.port}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None

    def fresh(self) -> None:
        """Forget the effects noted so far."""
        self.effects.unlink(missing_ok=True)

    def effects_seen(self, name: str | None = None) -> list[dict[str, Any]]:
        if not self.effects.exists():
            return []
        lines = [json.loads(line) for line in self.effects.read_text().splitlines()]
        return [e for e in lines if name is None or e["effect"] == name]


@pytest.fixture(scope="module")
def handler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HandlerProcess]:
    """One handler process for a module's tests (each test's effects: `fresh()`)."""
    proc = HandlerProcess(tmp_path_factory.mktemp("handler") / "effects.jsonl")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def own_handler(tmp_path: Path) -> Iterator[HandlerProcess]:
    """A handler of the test's own, which it may stop, kill and start again."""
    proc = HandlerProcess(tmp_path / "effects.jsonl")
    proc.start()
    yield proc
    proc.stop()


def open_remote(pg_url: str, url: str, secret: str = SECRET, **settings: Any) -> Ledgerflow:
    """A Ledgerflow whose registry imports nothing: it learns the handler's workflows."""
    return Ledgerflow.open(Settings(database_url=pg_url, dispatch=f"*={url}/",
                                    dispatch_secret=secret, lease_seconds=5, **settings),
                           registry=WorkflowRegistry(), upgrade=False)


@pytest.fixture
def remote_lf(pg_engine: SAEngine, pg_url: str, handler: HandlerProcess) -> Iterator[Ledgerflow]:
    handler.fresh()
    lf = open_remote(pg_url, handler.url)
    yield lf
    lf.close()


def drive(lf: Ledgerflow, run_id: str, timeout: float = 30.0,
          until: Any = None) -> RunState:
    """Execute due runs in this process until `run_id` is terminal (or `until(state)`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lf.engine.run_due()
        state = lf.engine.runtime.journal(run_id).state
        if (until(state) if until is not None else state.is_terminal):
            return state
        time.sleep(0.05)
    raise TimeoutError(f"run {run_id} is {state.status.value} after {timeout}s")
