"""`ledgerflow doctor` asks each workflow handler `LEDGERFLOW_DISPATCH` names what it
serves: a handler that does not answer fails the `handlers` check, naming it."""

from __future__ import annotations

from ledgerflow._app import build_store
from ledgerflow.eventstore import create_engine
from ledgerflow.observability.doctor import NAMES, diagnose
from ledgerflow.settings import Settings
from tests._broker import free_port
from tests.remote.conftest import SECRET, HandlerProcess


def _report(pg_url: str, dispatch: str) -> tuple[list[str], dict[str, object], int]:
    settings = Settings(database_url=pg_url, dispatch=dispatch, dispatch_secret=SECRET)
    db = create_engine(pg_url)
    try:
        report = diagnose(build_store(db, settings), settings)
    finally:
        db.dispose()
    checks = [c.to_json() for c in report.checks]
    return [str(c["name"]) for c in checks], checks[-1], report.exit_code


def test_a_handler_that_answers_is_ok_and_one_that_does_not_fails(
        pg_url: str, handler: HandlerProcess) -> None:
    names, last, _ = _report(pg_url, f"*={handler.url}/")
    assert names == [*NAMES, "handlers"]
    assert last["status"] == "ok" and last["value"] == 1
    gone = f"http://127.0.0.1:{free_port()}/lf"  # nothing listens there
    names, last, code = _report(pg_url, f"booking={gone},*={handler.url}")
    assert last["status"] == "fail" and last["value"] == 1 and code == 2
    message = str(last["message"])
    assert message.startswith("1 of 2 workflow handler(s) do not answer")
    assert gone in message and handler.url not in message


def test_without_handlers_there_is_no_handlers_check(pg_url: str) -> None:
    names, _, _ = _report(pg_url, "*=inline")
    assert names == list(NAMES)
