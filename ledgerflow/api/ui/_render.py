"""Rendering the dashboard's pages: one Jinja2 environment over the package's
templates, the filters they use, and the error page every route falls back to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ledgerflow.api._gate import principal, tokens_of
from ledgerflow.api.ui._format import STATUS_MARKS, pretty, seconds, when
from ledgerflow.domain.errors import LedgerflowError

HERE = Path(__file__).parent
STATIC = HERE / "static"

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
