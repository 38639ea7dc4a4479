"""The CLI as a new user meets it, in a new directory with a fresh shell (subprocess, no
PYTHONPATH): workflows from a module or a file there, one-line errors (`--debug` for the
traceback), `--version`, unsupported database URLs, and reading that creates nothing."""

from __future__ import annotations

import sqlite3
import uuid
from importlib.metadata import version
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from ledgerflow.cli import app
from ledgerflow.eventstore import create_engine
from ledgerflow.eventstore.database import create_database, drop_database
from ledgerflow.eventstore.migrations import upgrade
from ledgerflow.migrations import all_migrations
from tests.cli.conftest import fresh_env, one_error_line, run_in
from tests.conftest import PG_SERVER

HELLO = '''from ledgerflow import Context, workflow


@workflow("hello")
def hello(ctx: Context, name: str) -> str:
    return ctx.step("greet", lambda: f"hello {name}")
'''


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A new directory holding `hello.py`, its database upgraded."""
    (tmp_path / "hello.py").write_text(HELLO)
    done = run_in(tmp_path, fresh_env(), "db", "upgrade")
    assert done.returncode == 0, done.stderr
    return tmp_path


def test_workflows_come_from_a_module_or_a_file_in_the_current_directory(home: Path) -> None:
    (home / "flows").mkdir()
    (home / "flows" / "named.py").write_text(HELLO.replace('"hello"', '"named"'))
    for option, workflow in (("hello", "hello"), ("hello.py", "hello"),
                             (str(home / "hello.py"), "hello"), ("flows/named.py", "named")):
        done = run_in(home, fresh_env(), "--workflows", option, "trigger", workflow)
        assert done.returncode == 0, (option, done.stderr)
        assert done.stdout.startswith("triggered run "), option
    by_env = run_in(home, fresh_env(LEDGERFLOW_WORKFLOWS="hello.py"), "trigger", "hello")
    assert by_env.returncode == 0, by_env.stderr


def test_a_module_that_does_not_import_is_one_line_or_with_debug_a_traceback(
        home: Path) -> None:
    (home / "broken.py").write_text("import no_such_dependency_here\n")
    line = one_error_line(run_in(home, fresh_env(), "--workflows", "broken", "runs", "list"))
    assert line == ("error: cannot import workflow module 'broken': ModuleNotFoundError: No "
                    "module named 'no_such_dependency_here' (--debug shows the traceback)")
    missing = one_error_line(run_in(home, fresh_env(), "--workflows", "nope.py", "runs", "list"))
    assert "'nope.py'" in missing and "FileNotFoundError" in missing
    for args, env in ((("--debug", "--workflows", "broken"), fresh_env()),
                      (("--workflows", "broken"), fresh_env(LEDGERFLOW_DEBUG="1"))):
        done = run_in(home, env, *args, "runs", "list")
        assert done.returncode == 1
        assert "Traceback (most recent call last)" in done.stderr
        assert 'broken.py", line 1' in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith(
            "error: cannot import workflow module 'broken'")


def test_version(tmp_path: Path) -> None:
    done = run_in(tmp_path, fresh_env(), "--version")
    assert (done.returncode, done.stdout) == (0, f"ledgerflow {version('ledgerflow')}\n")


def _error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("url", ["mysql://ada:secret@db/ledger",
                                 "postgresql+psycopg2://ada:secret@db/ledger"])
def test_an_unsupported_database_url_is_named(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERFLOW_DATABASE_URL", url)
    for args in (("runs", "list"), ("db", "upgrade"), ("worker",)):
        line = _error_line(CliRunner().invoke(app, list(args)))
        assert "unsupported database URL" in line, args
        assert line.endswith("use postgresql:// or sqlite:///"), args
        assert "secret" not in line and "workflow" not in line, args


READERS = [("runs", "list"), ("runs", "show", "abcdef12"), ("runs", "history", "abcdef12"),
           ("outbox", "status"), ("outbox", "dlq", "list"), ("projections", "status"),
           ("relay", "--once"), ("signal", "abcdef12", "go"), ("trigger", "hello")]


def test_reading_a_missing_sqlite_file_creates_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/typo.db"
    monkeypatch.setenv("LEDGERFLOW_DATABASE_URL", url)
    for args in READERS:
        line = _error_line(CliRunner().invoke(app, list(args)))
        assert url in line and "`ledgerflow db upgrade`" in line, (args, line)
        assert not (tmp_path / "typo.db").exists(), args


def test_reading_a_database_without_the_schema_creates_no_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sqlite3.connect(tmp_path / "empty.db").close()
    monkeypatch.setenv("LEDGERFLOW_DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")
    for args in READERS:
        line = _error_line(CliRunner().invoke(app, list(args)))
        assert line.endswith("has no ledgerflow schema; run `ledgerflow db upgrade`"), line
    with sqlite3.connect(tmp_path / "empty.db") as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_reading_a_postgresql_database_short_of_head_names_what_is_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"lf_cli_{uuid.uuid4().hex[:10]}"
    url = create_database(PG_SERVER, name)
    engine = create_engine(url)
    monkeypatch.setenv("LEDGERFLOW_DATABASE_URL", url)
    try:
        assert "has no ledgerflow schema" in _error_line(CliRunner().invoke(app, ["runs", "list"]))
        assert sa.inspect(engine).get_table_names() == []
        upgrade(engine, [m for m in all_migrations() if m.version == 1])
        line = _error_line(CliRunner().invoke(app, ["projections", "status"]))
        assert "is not upgraded (" in line and "migrations pending)" in line, line
        assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
        assert CliRunner().invoke(app, ["runs", "list"]).stdout == "no runs\n"
    finally:
        engine.dispose()
        drop_database(PG_SERVER, name)
