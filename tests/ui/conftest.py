"""Dashboard fixtures: a real `ledgerflow serve` process on the session PostgreSQL
database, and Debian's headless Chromium driven by Selenium (chromedriver).

Screenshots go to `test-artifacts/ui/` (git-ignored) so a person can look at them."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow._app import Ledgerflow
from ledgerflow.api import create_app
from ledgerflow.settings import Settings
from tests.api._workflows import registry
from tests.cli.conftest import ROOT, cli_env
from tests.cli.test_serve import Served, start_serve

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts" / "ui"
WAIT = 60.0
"""Seconds a browser test waits for something to show (generous: a noisy machine)."""


def chrome(width: int = 1280, height: int = 900) -> WebDriver:
    """A headless Chromium of the given window size."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            raise AssertionError(f"{path} is missing: apt-get install chromium chromium-driver "
                                 "(.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--no-first-run",
                "--disable-background-networking", "--disable-extensions"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


TOKENS = "root-token=*,acme-token=acme,globex-token=globex"


@pytest.fixture
def lf(pg_engine: SAEngine, pg_url: str, tmp_path: Path) -> Iterator[Ledgerflow]:
    settings = Settings(database_url=pg_url, sink_path=f"{tmp_path}/events.jsonl")
    app = Ledgerflow.open(settings, registry=registry(), upgrade=False)
    yield app
    app.close()


@pytest.fixture
def client(lf: Ledgerflow) -> Iterator[TestClient]:
    """The dashboard with no tokens configured (open)."""
    with TestClient(create_app(lf)) as c:
        yield c


@pytest.fixture
def authed(lf: Ledgerflow) -> Iterator[TestClient]:
    """Tokens configured: root sees all, acme and globex only their tenant."""
    settings = lf.settings.model_copy(update={"api_tokens": TOKENS})
    with TestClient(create_app(lf, settings)) as c:
        yield c


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = chrome()
    yield driver
    driver.quit()


@pytest.fixture
def serve(pg_engine: SAEngine, pg_url: str, tmp_path: Path) -> Iterator[Served]:
    """`serve` with no tokens (an open dashboard)."""
    yield from start_serve(cli_env(pg_url, tmp_path))


@pytest.fixture
def serve_authed(pg_engine: SAEngine, pg_url: str, tmp_path: Path) -> Iterator[Served]:
    """`serve` with tokens (root sees all; acme and globex their tenant) and no relay."""
    env = cli_env(pg_url, tmp_path, LEDGERFLOW_API_TOKENS=TOKENS)
    yield from start_serve(env, "--no-relay")


def shot(driver: WebDriver, name: str) -> Path:
    """Save a screenshot of the whole page as test-artifacts/ui/NAME.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(int(height) + 120, 600), 6000))
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(path))
    return path


def until(driver: WebDriver, what: Callable[[WebDriver], Any], message: str) -> Any:
    """Wait (up to `WAIT` seconds) for `what` to give something truthy."""
    def attempt(d: WebDriver) -> Any:
        try:
            return what(d)
        except WebDriverException:
            return False
    return WebDriverWait(driver, WAIT, poll_frequency=0.2).until(attempt, message)


def text_of(driver: WebDriver, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def submit_confirmed(driver: WebDriver, button: WebElement) -> str:
    """Click a form's button and accept the confirmation it asks for; its question."""
    button.click()
    alert = WebDriverWait(driver, WAIT).until(lambda d: d.switch_to.alert)
    question = str(alert.text)
    alert.accept()
    return question


def wait_status(served: Served, run_id: str, *statuses: str,
                headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The run once its status is one of `statuses` (through the API)."""
    deadline = time.monotonic() + WAIT
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = served.http.get(f"/api/runs/{run_id}", headers=headers).json()
        if run.get("status") in statuses:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} is {run.get('status')}, not {statuses}")
