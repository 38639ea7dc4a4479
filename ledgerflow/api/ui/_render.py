"""Rendering the dashboard's pages: one Jinja2 environment over the package's
templates, the filters they use, and the error page every route falls back to."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ledgerflow.api._gate import principal, tokens_of
from ledgerflow.domain.errors import LedgerflowError

HERE = Path(__file__).parent
STATIC = HERE / "static"

STATUS_MARKS = {"pending": "○", "running": "▶", "suspended": "‖", "compensating": "↺",
                "completed": "✓", "failed": "✗", "canceled": "⊘",
                "published": "✓", "dead": "✗", "discarded": "⊘"}
"""A shape beside each status word, so a status reads without colour too."""


def when(moment: datetime | None) -> str:
    """A time as UTC, to the millisecond (`2026-01-02 03:04:05.678Z`)."""
    if moment is None:
        return ""
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def pretty(value: Any) -> str:
    """A JSON value, indented."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                        default=str).decode()


def seconds(value: float | None) -> str:
    """A duration in the unit that reads best (`850 ms`, `12.4 s`, `3 min 5 s`)."""
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(int(value), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


_env = Environment(loader=FileSystemLoader(HERE / "templates"),
                   autoescape=select_autoescape(default=True), trim_blocks=True,
                   lstrip_blocks=True, auto_reload=False)
_env.filters.update(when=when, pretty=pretty, seconds=seconds)
_env.globals.update(marks=STATUS_MARKS)


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """`template` rendered for the caller, with the layout's common context: who
    signed in (tenant), whether the dashboard is open (no tokens configured)."""
    who = principal(request)
    context.update(request=request, tenant=who.tenant, open=not tokens_of(request),
                   path=request.url.path)
    html = _env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, exc: LedgerflowError) -> HTMLResponse:
    """The page for an error a route raised: its HTTP status, code and message, as the
    JSON API would give them."""
    return page(request, "error.html", exc.http_status, code=exc.code, message=str(exc))
