"""The dashboard's read pages: the runs list (with its live fragment) and a run's
detail. Every read goes through the functions the JSON API and `/metrics` use
(`queries.list_runs`, `queries.count_by_status` or the maintained `run_counts`,
`queries.resolve_run_id`, `listed_tenant`, `visible_run`), so a tenant token sees in
the browser exactly what it sees through the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Connection

from ledgerflow.api._gate import Principal, principal
from ledgerflow.api._runs import App, listed_tenant
from ledgerflow.api.ui import _detail
from ledgerflow.api.ui._render import error_page, page
from ledgerflow.domain.errors import AmbiguousRunId, InvalidRequest, LedgerflowError, UnknownRun
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.projections import queries
from ledgerflow.projections._counts import run_counts

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
Text = Annotated[str, Query(max_length=200)]


@dataclass(frozen=True)
class Filters:
    """The runs list's filters, as the form sent them (empty: not filtered)."""

    status: str = ""
    workflow: str = ""
    tenant: str = ""
    tag: str = ""
    queue: str = ""
    since: str = ""
    until: str = ""

    def query(self, **more: str) -> str:
        """These filters (and `more`) as a query string, empty values left out."""
        values = {**self.__dict__, **more}
        return urlencode({k: v for k, v in values.items() if v})

    def window(self) -> queries.Window:
        return _moment(self.since, "since"), _moment(self.until, "until", end=True)

    def status_value(self) -> RunStatus | None:
        if not self.status:
            return None
        try:
            return RunStatus(self.status)
        except ValueError:
            raise InvalidRequest(f"status {self.status!r} is not one of "
                                 f"{', '.join(s.value for s in RunStatus)}") from None


def _moment(text: str, name: str, end: bool = False) -> datetime | None:
    """A date (`2026-01-31`: the whole day when `end`) or a date and time, read as UTC."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{name} {text!r} is not a date (YYYY-MM-DD) or a date and "
                             "time (YYYY-MM-DDTHH:MM)") from None
    if end and len(text) == 10:
        moment += timedelta(days=1)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _filters(status: str, workflow: str, tenant: str, tag: str, queue: str, since: str,
             until: str) -> Filters:
    return Filters(status.strip(), workflow.strip(), tenant.strip(), tag.strip(),
                   queue.strip(), since.strip(), until.strip())


@router.get("/", response_class=RedirectResponse)
def root() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=307)


@router.get("/ui", response_class=HTMLResponse)
def runs_page(request: Request, lf: App, status: Text = "", workflow: Text = "",
              tenant: Text = "", tag: Text = "", queue: Text = "", since: Text = "",
              until: Text = "", q: Text = "",
              cursor: Annotated[str, Query(max_length=2000)] = "") -> Response:
    """The runs list; `q` looks a run up by its id or an id prefix."""
    filters = _filters(status, workflow, tenant, tag, queue, since, until)
    who = principal(request)
    if q.strip():
        found = _search(request, lf, who, q.strip(), filters)
        if found is not None:
            return found
    try:
        listing = _listing(lf, who, filters, cursor or None)
    except LedgerflowError as exc:
        return page(request, "runs.html", exc.http_status, filters=filters, q=q,
                    problem=str(exc), **_empty())
    return page(request, "runs.html", filters=filters, q=q, cursor=cursor, **listing)


@router.get("/ui/live", response_class=HTMLResponse)
def runs_rows(request: Request, lf: App, status: Text = "", workflow: Text = "",
              tenant: Text = "", tag: Text = "", queue: Text = "", since: Text = "",
              until: Text = "") -> Response:
    """The live part of the runs list (counts and the first page), polled by ui.js."""
    filters = _filters(status, workflow, tenant, tag, queue, since, until)
    try:
        listing = _listing(lf, principal(request), filters, None)
    except LedgerflowError as exc:
        return error_page(request, exc)
    return page(request, "_runs_live.html", filters=filters, **listing)


def _empty() -> dict[str, Any]:
    return {"runs": [], "counts": {}, "next_cursor": None, "total": 0, "cap": None, "capped": 0}


def _listing(lf: App, who: Principal, filters: Filters,
             cursor: str | None) -> dict[str, Any]:
    tenant = listed_tenant(who, filters.tenant or None)
    with lf.db.connect() as conn:
        runs, next_cursor = queries.list_runs(
            conn, status=filters.status_value(), workflow_id=filters.workflow or None,
            tenant_id=tenant, tag=filters.tag or None, queue=filters.queue or None,
            created=filters.window(), cursor=cursor, limit=PAGE_SIZE)
        counts, cap = _counts(conn, tenant)
    capped = sum(1 for n in counts.values() if cap is not None and n > cap)
    return {"runs": runs, "counts": counts, "next_cursor": next_cursor,
            "total": sum(counts.values()), "cap": cap, "capped": capped}


def _counts(conn: Connection, tenant: str | None) -> tuple[dict[str, int], int | None]:
    """Runs per status and where they stop being counted (None: exact). Across tenants:
    the maintained counts (`run_counts`, as `/metrics` and `doctor` read them: finished
    runs from their counter rows, the others on the status index), exact whatever the
    history. A tenant's: the maintained counts are not per tenant, so its runs are
    counted on the index up to `COUNT_CAP` per status (the cost stays flat)."""
    if tenant is None:
        return run_counts(conn), None
    cap = queries.COUNT_CAP
    return queries.count_by_status(conn, tenant_id=tenant, cap=cap), cap


def _search(request: Request, lf: App, who: Principal, text: str,
            filters: Filters) -> Response | None:
    """The run `text` names (redirect), or the list with what went wrong."""
    try:
        with lf.db.connect() as conn:
            run_id = queries.resolve_run_id(conn, text, tenant_id=who.tenant)
    except AmbiguousRunId as exc:
        return page(request, "runs.html", filters=filters, q=text, candidates=exc.candidates,
                    more=exc.more, problem=str(exc), **_empty())
    except UnknownRun:
        hint = (f" (a prefix needs at least {queries.MIN_PREFIX} characters)"
                if len(text) < queries.MIN_PREFIX else "")
        return page(request, "runs.html", 404, filters=filters, q=text,
                    problem=f"no run id is or starts with {text!r}{hint}", **_empty())
    return RedirectResponse(f"/ui/runs/{quote(run_id, safe='')}", status_code=303)


@router.get("/ui/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, lf: App,
             notice: Text = "", part: Text = "") -> Response:
    """A run's detail; `part=body` gives only its live part (polled by ui.js)."""
    try:
        detail = _detail.gather(lf, principal(request), run_id)
    except LedgerflowError as exc:
        return error_page(request, exc)
    template = "_run_body.html" if part == "body" else "run.html"
    return page(request, template, d=detail, run=detail.run, notice=notice)
