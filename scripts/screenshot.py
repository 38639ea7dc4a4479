"""Regenerate docs/run-detail.png, the README's picture of the run detail page.

Starts `ledgerflow serve` on a throw-away SQLite database with the bundled demo
workflows, runs `demo.checkout-failing` to its end (it waits for the signal
`approval`, then its last step fails and its compensators run), and photographs
the run's page at 1280 px in Debian's headless Chromium (`chromium`,
`chromium-driver`; Selenium comes with the dev extras).

    .venv/bin/python scripts/screenshot.py [OUTPUT.png]
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "run-detail.png"
WIDTH = 1280


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(http: httpx.Client, run_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run: dict[str, Any] = http.get(f"/api/runs/{run_id}").json()
        if run["status"] in statuses:
            return run
        time.sleep(0.2)
    raise SystemExit(f"run {run_id} did not reach {statuses}")


def play(base_url: str) -> str:
    """The demo run, played to its end; its id."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        deadline = time.monotonic() + 60
        while True:
            try:
                if http.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)
        created = http.post("/api/runs", json={
            "workflowId": "demo.checkout-failing", "tags": ["web", "eu-west"],
            "tenantMeta": {"tenantId": "acme"},
            "input": {"bookingId": "B-1042", "amount": 129, "coolOffSeconds": 1,
                      "email": "maria@example.com"}})
        created.raise_for_status()
        run_id: str = created.json()["id"]
        wait_for(http, run_id, "suspended")
        while http.get(f"/api/runs/{run_id}").json()["waitpoint"]["kind"] != "signal":
            time.sleep(0.2)
        http.post(f"/api/runs/{run_id}/signals",
                  json={"name": "approval", "payload": "maria"}).raise_for_status()
        wait_for(http, run_id, "failed")
        return run_id


def photograph(url: str, output: Path) -> None:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--window-size={WIDTH},900", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(url)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(WIDTH, int(height))
        output.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(output))
    finally:
        driver.quit()


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
        env.update(LEDGERFLOW_DATABASE_URL=f"sqlite:///{tmp}/screenshot.db",
                   LEDGERFLOW_SINK_PATH=f"{tmp}/events.jsonl",
                   LEDGERFLOW_WORKFLOWS="ledgerflow.demo.workflows")
        cli = [sys.executable, "-m", "ledgerflow.cli"]
        subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True)
        port = free_port()
        server = subprocess.Popen([*cli, "serve", "--port", str(port), "--poll-interval", "0.1"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            run_id = play(f"http://127.0.0.1:{port}")
            photograph(f"http://127.0.0.1:{port}/ui/runs/{run_id}", output)
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
