"""CLI fixtures: run `ledgerflow` as a subprocess against the session PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine as SAEngine
from typer.testing import CliRunner, Result

from ledgerflow._app import Ledgerflow
from ledgerflow.cli import app
from ledgerflow.cli.common import console, err_console
from ledgerflow.settings import Settings
from tests.api._workflows import registry

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = "tests.api._workflows"


class Cli:
    """`ledgerflow ...` in a subprocess with the test's environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, ok: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "ledgerflow.cli", *args], env=self.env,
                              cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        if ok:
            assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


def cli_env(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    env.update(LEDGERFLOW_DATABASE_URL=database_url, LEDGERFLOW_WORKFLOWS=WORKFLOWS,
               LEDGERFLOW_SINK_PATH=str(tmp_path / "events.jsonl"), COLUMNS="200",
               PYTHONPATH=str(ROOT), **extra)
    return env


@pytest.fixture
def cli(pg_engine: SAEngine, pg_url: str, tmp_path: Path) -> Cli:
    return Cli(cli_env(pg_url, tmp_path))


@pytest.fixture
def lf(pg_engine: SAEngine, pg_url: str, tmp_path: Path) -> Iterator[Ledgerflow]:
    """The same database in-process, to run what the CLI triggered."""
    app = Ledgerflow.open(Settings(database_url=pg_url, sink_path=str(tmp_path / "x.jsonl")),
                          registry=registry(), upgrade=False)
    yield app
    app.close()


def fresh_env(**extra: str) -> dict[str, str]:
    """A new user's shell: no LEDGERFLOW_* setting and no PYTHONPATH, 80 columns."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LEDGERFLOW_") and k != "PYTHONPATH"}
    env.update(COLUMNS="80", **extra)
    return env


def run_in(cwd: Path, env: dict[str, str], *args: str,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`ledgerflow ARGS` run in `cwd` as the installed console script runs: `-P` keeps
    the current directory off `sys.path` (`python -m` alone would put it first)."""
    return subprocess.run([sys.executable, "-P", "-m", "ledgerflow.cli", *args], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single `error: ...` line a user mistake prints (asserting there is one)."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0, done.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.fixture
def run(pg_engine: SAEngine, pg_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`ledgerflow ARGS` in this process, on the session database, 80 columns wide."""
    for out in (console, err_console):
        monkeypatch.setattr(out, "width", 80)
    monkeypatch.setenv("LEDGERFLOW_DATABASE_URL", pg_url)
    monkeypatch.setenv("LEDGERFLOW_WORKFLOWS", WORKFLOWS)
    monkeypatch.setenv("LEDGERFLOW_SINK_PATH", str(tmp_path / "events.jsonl"))

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, list(args))

    yield invoke
