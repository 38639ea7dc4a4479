"""The README's tracing setup, as written there: `opentelemetry-instrument ledgerflow
serve` with the standard `OTEL_*` variables (the console exporter here, instead of
OTLP to a collector) exports the run's spans, in the trace of the request that
triggered it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy.engine import Engine as SAEngine

from tests._broker import free_port
from tests.cli.conftest import ROOT, cli_env

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def test_opentelemetry_instrument_serve_exports_the_runs_spans(
        pg_engine: SAEngine, pg_url: str, tmp_path: Path) -> None:
    instrument = Path(sys.executable).with_name("opentelemetry-instrument")
    port = free_port()
    env = cli_env(pg_url, tmp_path, OTEL_SERVICE_NAME="ledgerflow-test",
                  OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none",
                  OTEL_LOGS_EXPORTER="none")
    process = subprocess.Popen(
        [str(instrument), sys.executable, "-m", "ledgerflow.cli", "serve", "--port", str(port),
         "--threads", "2", "--poll-interval", "0.1"],
        env=env, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, process.communicate()
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "serve did not answer /healthz"
                time.sleep(0.1)
            created = http.post("/api/runs", json={"workflowId": "greet", "input": "otel"},
                                headers={"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01"})
            assert created.status_code == 201, created.text
            deadline = time.monotonic() + 60
            while http.get(f"/api/runs/{created.json()['id']}").json()["status"] != \
                    "completed":
                assert time.monotonic() < deadline, "the run did not complete"
                time.sleep(0.1)
        process.send_signal(signal.SIGTERM)  # the SDK flushes its batch at exit
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert '"name": "ledgerflow.run"' in out and '"name": "ledgerflow.step"' in out, out[-2000:]
    assert f'"trace_id": "0x{TRACE_ID}"' in out
    assert '"service.name": "ledgerflow-test"' in out
