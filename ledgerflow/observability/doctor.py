"""`diagnose`: the named health checks of `ledgerflow doctor` and `GET /api/health/details`.

Interface: `diagnose(store, settings, clock=utcnow) -> Report`; `Report.to_json()` is
`{status, checks: [{name, status, value, message}]}` and `Report.exit_code` is 0 (ok),
1 (warn) or 2 (fail). Checks, in order: `store`, `schema`, `runs_overdue`,
`leases_expired`, `outbox_oldest_pending`, `dead_letters`, `projection_lag`,
`clock_skew`, then `handlers` when `LEDGERFLOW_DISPATCH` maps workflows to workflow
handlers (each asked `GET {url}/workflows`). Each is `ok|warn|fail` with its figure
(`value`) and, when not ok, a
message that says what is wrong and the next thing to do. Thresholds are the
`LEDGERFLOW_DOCTOR_*` settings. When the store does not answer, the other checks
fail with it (nothing else can be read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from ledgerflow.eventstore.migrations import pending
from ledgerflow.eventstore.store import Clock, EventStore, utcnow
from ledgerflow.migrations import all_migrations
from ledgerflow.observability.store_figures import Figures, read_figures
from ledgerflow.projections import Projection
from ledgerflow.remote.endpoint import INLINE, DispatchUnavailable, Endpoint, parse_table
from ledgerflow.settings import Settings

Status = Literal["ok", "warn", "fail"]
_RANK: dict[Status, int] = {"ok": 0, "warn": 1, "fail": 2}
NAMES = ("store", "schema", "runs_overdue", "leases_expired", "outbox_oldest_pending",
         "dead_letters", "projection_lag", "clock_skew")
"""The checks every report has (`handlers` follows when dispatch names handlers)."""
HANDLER_TIMEOUT = 3.0
"""Seconds a handler has to answer `GET {url}/workflows`."""


@dataclass(frozen=True)
class Check:
    """One check's outcome: its figure and, unless ok, what to do next."""

    name: str
    status: Status
    value: Any
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "value": self.value,
                "message": self.message}


@dataclass(frozen=True)
class Report:
    """Every check; the report's status is the worst of theirs."""

    checks: list[Check]

    @property
    def status(self) -> Status:
        return max((c.status for c in self.checks), key=_RANK.__getitem__, default="ok")

    @property
    def exit_code(self) -> int:
        return _RANK[self.status]

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "checks": [c.to_json() for c in self.checks]}


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _graded(value: float, warn: float, fail: float) -> Status:
    return "fail" if value >= fail else "warn" if value >= warn else "ok"


def _overdue(f: Figures, s: Settings) -> Check:
    age = f.oldest_overdue_seconds
    status = _graded(age, s.doctor_overdue_warn_seconds, s.doctor_overdue_fail_seconds)
    message = "" if status == "ok" else (
        f"{f.runs_overdue} run(s) overdue by up to {_ago(age)}: no worker is claiming; "
        "start `ledgerflow worker` (or `ledgerflow serve`) with these workflows")
    return Check("runs_overdue", status, f.runs_overdue, message)


def _leases(f: Figures) -> Check:
    if not f.leases_expired:
        return Check("leases_expired", "ok", 0, "")
    return Check("leases_expired", "warn", f.leases_expired,
                 f"{f.leases_expired} run(s) hold an expired lease: their worker stopped "
                 "mid-run; a running worker reaps and resumes them, start `ledgerflow worker`")


def _outbox(f: Figures, s: Settings) -> Check:
    age = f.outbox_oldest_pending_seconds
    status = _graded(age, s.doctor_outbox_warn_seconds, s.doctor_outbox_fail_seconds)
    message = "" if status == "ok" else (
        f"the oldest of {f.outbox_pending} unpublished outbox row(s) is {_ago(age)} old: "
        "is the relay running and the broker reachable? start `ledgerflow relay` and "
        "check LEDGERFLOW_KAFKA_BOOTSTRAP (`ledgerflow outbox status`)")
    return Check("outbox_oldest_pending", status, round(age, 3), message)


def _dead(f: Figures, s: Settings) -> Check:
    if f.outbox_dead < s.doctor_dead_warn:
        return Check("dead_letters", "ok", f.outbox_dead, "")
    return Check("dead_letters", "warn", f.outbox_dead,
                 f"{f.outbox_dead} outbox row(s) are dead letters: inspect them with "
                 "`ledgerflow outbox dlq list`, then `replay` or `discard` them")


def _lag(f: Figures, s: Settings) -> Check:
    name, worst = max(f.projection_lag.items(), key=lambda kv: kv[1], default=("", 0))
    if worst < s.doctor_projection_lag_warn:
        return Check("projection_lag", "ok", worst, "")
    return Check("projection_lag", "warn", worst,
                 f"projection {name} is {worst} events behind: run a projector "
                 "(`ledgerflow serve`), see `ledgerflow projections status`")


def _skew(store: EventStore, clock: Clock, s: Settings) -> Check:
    with store.engine.connect() as conn:
        before = clock()
        db_now = conn.execute(sa.select(sa.func.current_timestamp(type_=sa.DateTime))).scalar()
        after = clock()
    if not isinstance(db_now, datetime):
        db_now = datetime.fromisoformat(str(db_now))
    if db_now.tzinfo is None:  # SQLite's CURRENT_TIMESTAMP is UTC without a zone
        db_now = db_now.replace(tzinfo=UTC)
    app_now = before + (after - before) / 2
    skew = (app_now - db_now).total_seconds()
    if abs(skew) < s.doctor_clock_skew_warn_seconds:
        return Check("clock_skew", "ok", round(skew, 3), "")
    return Check("clock_skew", "warn", round(skew, 3),
                 f"this host's clock is {skew:+.1f} s off the database's: timers, leases "
                 "and retry back-off misfire by that much; synchronise clocks (NTP)")


def _store(store: EventStore) -> Check:
    try:
        with store.engine.connect() as conn:
            conn.execute(sa.select(sa.literal(1)))
    except sa.exc.SQLAlchemyError as exc:
        return Check("store", "fail", None,
                     f"the store does not answer ({exc.__class__.__name__}): check "
                     "LEDGERFLOW_DATABASE_URL and that the database is up")
    return Check("store", "ok", None, "")


def _schema(store: EventStore) -> Check:
    missing = pending(store.engine, all_migrations())
    if not missing:
        return Check("schema", "ok", 0, "")
    return Check("schema", "fail", len(missing),
                 f"{len(missing)} migration(s) not applied "
                 f"({', '.join(f'{m.component} {m.version}' for m in missing)}): "
                 "run `ledgerflow db upgrade`")


def _handlers(settings: Settings) -> list[Check]:
    """The workflow handlers `LEDGERFLOW_DISPATCH` names, each asked what it serves (no
    check without one)."""
    urls = sorted({url for url in parse_table(settings.dispatch).values() if url != INLINE})
    if not urls:
        return []
    down: list[str] = []
    for url in urls:
        endpoint = Endpoint(url, settings.dispatch_secret or "", timeout=HANDLER_TIMEOUT,
                            tries=1)
        try:
            endpoint.workflows()
        except DispatchUnavailable as error:
            down.append(f"{url}: {error}")
        finally:
            endpoint.close()
    if not down:
        return [Check("handlers", "ok", len(urls), "")]
    return [Check("handlers", "fail", len(down),
                  f"{len(down)} of {len(urls)} workflow handler(s) do not answer GET "
                  f"/workflows ({'; '.join(down)}): runs of their workflows wait; start "
                  "the service that mounts asgi_handler there, or fix LEDGERFLOW_DISPATCH")]


def diagnose(store: EventStore, settings: Settings, clock: Clock = utcnow,
             projections: Sequence[Projection] | None = None) -> Report:
    """Run every check against `store` (`projections`: whose lag to check; default
    ledgerflow's own, see `read_figures`)."""
    first = _store(store)
    if first.status == "fail":
        return Report([first, *(Check(n, "fail", None, "the store does not answer")
                                for n in NAMES[1:])])
    schema = _schema(store)
    if schema.status == "fail":
        return Report([first, schema, *(Check(n, "fail", None, "the schema is not current")
                                         for n in NAMES[2:])])
    figures = read_figures(store, clock,
                           timedelta(seconds=settings.doctor_overdue_warn_seconds), projections)
    return Report([first, schema, _overdue(figures, settings), _leases(figures),
                   _outbox(figures, settings), _dead(figures, settings),
                   _lag(figures, settings), _skew(store, clock, settings),
                   *_handlers(settings)])
