"""Structured logs: one line per record, as text or JSON.

Interface: `configure_logging(settings, stream=None)`, called once at the start of
`serve`, `worker` and `relay` (`LEDGERFLOW_LOG_LEVEL`, `LEDGERFLOW_LOG_FORMAT`:
`text` or `json`; unset: text when the stream is a terminal, JSON otherwise).
`JsonFormatter` and `TextFormatter` can be installed by hand on any handler.

Every line carries time (UTC, ISO 8601), level, logger and message and, when known,
`run_id`, `workflow`, `step`, `attempt` and `trace_id`. They come from the record's
`extra` (the executor passes them), else from the step attempt running the code that
logs (`ledgerflow.current_step()`: a user's `log.info` inside a step gets them too),
and the trace id from the current OpenTelemetry span when one is recording. A failing
attempt's record carries its stored traceback (`extra={"traceback": ...}`): JSON puts
it in a `traceback` field, text prints it under the line, once.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from ledgerflow.runtime.steps import StepInfo, current_step
from ledgerflow.settings import Settings

FIELDS = ("run_id", "workflow", "step", "attempt", "trace_id")
_HANDLER_NAME = "ledgerflow"


def _trace_id() -> str | None:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - opentelemetry-api is a dependency
        return None
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def _step() -> StepInfo | None:
    try:
        return current_step()
    except RuntimeError:  # not logged from a step's code
        return None


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The run fields known for `record` (absent ones left out)."""
    found: dict[str, Any] = {}
    step = _step()
    if step is not None:
        found.update(run_id=step.run_id, step=step.step_id, attempt=step.attempt)
    for name in FIELDS:
        value = record.__dict__.get(name)
        if value is not None:
            found[name] = value
    if "trace_id" not in found:
        trace_id = _trace_id()
        if trace_id is not None:
            found["trace_id"] = trace_id
    return found


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def _traceback(record: logging.LogRecord, formatter: logging.Formatter) -> str | None:
    stored = record.__dict__.get("traceback")
    if stored:
        return str(stored).rstrip("\n")
    if record.exc_info:
        return formatter.formatException(record.exc_info)
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": _time(record), "level": record.levelname,
                                "logger": record.name, "message": record.getMessage(),
                                **record_fields(record)}
        tb = _traceback(record, self)
        if tb is not None:
            line["traceback"] = tb
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...`, then the traceback, if any."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in record_fields(record).items())
        line = (f"{_time(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
                + (f"  {fields}" if fields else ""))
        tb = _traceback(record, self)
        return line if tb is None else f"{line}\n{tb}"


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Install ledgerflow's handler on the root logger (once: a second call replaces it)
    at `settings.log_level`; returns the handler."""
    stream = stream if stream is not None else sys.stderr
    fmt = settings.log_format
    if fmt is None:
        fmt = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    return handler
