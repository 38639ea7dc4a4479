"""Structured logs: every line has time, level, logger, message and the run's fields;
a failing attempt logs its traceback once; code inside a step gets the step's fields."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from ledgerflow import Context
from ledgerflow._app import Ledgerflow
from ledgerflow.observability.logs import configure_logging
from ledgerflow.settings import Settings

user_log = logging.getLogger("tests.user_code")


def chatty(ctx: Context, _input: Any) -> str:
    def work() -> str:
        user_log.info("charging the card")
        return "ok"
    result: str = ctx.step("charge", work)
    return result


@pytest.fixture
def configured() -> Iterator[tuple[io.StringIO, list[logging.Handler]]]:
    root = logging.getLogger()
    level, before = root.level, list(root.handlers)
    stream = io.StringIO()
    yield stream, before
    for handler in list(root.handlers):
        if handler not in before:
            root.removeHandler(handler)
    root.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def test_json_lines_carry_the_run_fields_and_one_traceback(
        lf: Ledgerflow, configured: tuple[io.StringIO, list[logging.Handler]]) -> None:
    stream, _ = configured
    configure_logging(Settings(log_format="json", log_level="info"), stream)
    run = lf.engine.trigger("fragile", {"ok": False})
    lf.engine.tick()
    failed = [line for line in json_lines(stream) if line["logger"] == "ledgerflow.executor"]
    assert failed, stream.getvalue()
    line = failed[0]
    assert {"time", "level", "logger", "message"} <= set(line)
    assert line["level"] == "WARNING"
    assert (line["run_id"], line["workflow"], line["step"], line["attempt"]) == (
        run.run_id, "fragile", "second", 1)
    assert "Declined: card declined" in line["traceback"]
    assert stream.getvalue().count("Traceback (most recent call last)") == len(failed)


def test_text_lines_name_the_run_and_print_the_traceback_below(
        lf: Ledgerflow, configured: tuple[io.StringIO, list[logging.Handler]]) -> None:
    stream, _ = configured
    configure_logging(Settings(log_format="text"), stream)
    run = lf.engine.trigger("fragile", {"ok": False})
    lf.engine.tick()
    text = stream.getvalue()
    first = next(line for line in text.splitlines() if "ledgerflow.executor" in line)
    assert "WARNING" in first and f"run_id={run.run_id}" in first and "step=second" in first
    assert "Traceback (most recent call last)" in text


def test_code_inside_a_step_logs_with_the_steps_fields(
        lf: Ledgerflow, configured: tuple[io.StringIO, list[logging.Handler]]) -> None:
    stream, _ = configured
    lf.engine.registry.register("chatty", chatty)
    configure_logging(Settings(log_format="json"), stream)
    run = lf.engine.trigger("chatty")
    lf.engine.tick()
    line = next(x for x in json_lines(stream) if x["logger"] == "tests.user_code")
    assert (line["message"], line["run_id"], line["step"], line["attempt"]) == (
        "charging the card", run.run_id, "charge", 1)


def test_format_defaults_to_json_off_a_terminal_and_level_is_a_setting(
        configured: tuple[io.StringIO, list[logging.Handler]]) -> None:
    stream, _ = configured
    configure_logging(Settings(log_level="warning"), stream)
    configure_logging(Settings(log_level="warning"), stream)  # replaces, never doubles
    logging.getLogger("ledgerflow.test").info("not shown")
    logging.getLogger("ledgerflow.test").warning("shown")
    lines = json_lines(stream)
    assert [x["message"] for x in lines] == ["shown"]
