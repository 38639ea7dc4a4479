"""What the run detail page shows, gathered through the API's own reads: the run
record (`queries.find_run` with the caller's tenant, as `visible_run`), its history
and journal (`projections.queries`), its lineage (`queries.list_runs` by
`resumed_from` / `rerun_of`) and where each of its events stands in the outbox
(`outbox.delivery`); the step bars come from `_steps`.

What the run's stream fixes (its history, journal, step bars and their HTML) is kept
for the runs last shown (`SETTLED` per database, by run id; a bounded number of
events, `SETTLED_EVENTS`) and reused while the
run's version is the one it was read at: a stream is append-only, so its events up
to a version never change, and the journal (an inline projection) is written in the
same transaction as each event. A 500-event page then costs the run's row, the
lineage and the delivery state of the events not settled yet, instead of 500 events
read, decoded and rendered again (for every 2-second live refresh of an open page
too). Delivery states `published`, `discarded` and "no outbox row" are final (a row
is written with its event; purging a published row does not unpublish it), so only
`pending` and `dead` events are asked again."""

from __future__ import annotations

import threading
import weakref
from collections import Counter, OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from markupsafe import Markup

from ledgerflow import outbox
from ledgerflow._app import Ledgerflow
from ledgerflow.api._gate import Principal
from ledgerflow.api.ui import _rows
from ledgerflow.api.ui._steps import StepRow, bars
from ledgerflow.projections import queries

LINEAGE_SHOWN = 20
SETTLED = 32
"""Runs whose settled part (`Settled`) is kept, at most."""
SETTLED_EVENTS = 10_000
"""Events kept over all those runs, at most (about 3.3 kB each, HTML included): a
run with more is read again on each view."""
UNSETTLED = ("pending", "dead")
"""Delivery states that may still change (the others are final)."""


@dataclass(frozen=True)
class Settled:
    """What the run's stream at `version` fixes, and the delivery last seen with the
    timeline rendered for it. Never changed once made (a new one replaces it)."""

    version: int
    history: list[queries.HistoryEntry]
    steps: list[StepRow]
    axis: tuple[datetime, datetime]
    journal_html: Markup
    delivery: dict[str, str]
    timeline_html: Markup


@dataclass
class RunDetail:
    """Everything the detail page renders."""

    run: queries.RunRecord
    settled: Settled
    delivery_counts: dict[str, int]
    resumed_by: list[queries.RunRecord]
    reruns: list[queries.RunRecord]

    @property
    def history(self) -> list[queries.HistoryEntry]:
        return self.settled.history

    @property
    def steps(self) -> list[StepRow]:
        return self.settled.steps

    @property
    def axis(self) -> tuple[datetime, datetime]:
        return self.settled.axis

    @property
    def delivery(self) -> dict[str, str]:
        return self.settled.delivery


class _Kept:
    """The `Settled` parts of the runs last shown, least recently shown dropped first,
    within `runs` runs and `events` events."""

    def __init__(self, runs: int, events: int) -> None:
        self._runs_max, self._events_max = runs, events
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, Settled] = OrderedDict()
        self._events = 0

    def get(self, run_id: str, version: int) -> Settled | None:
        with self._lock:
            found = self._runs.get(run_id)
            if found is None or found.version != version:
                return None
            self._runs.move_to_end(run_id)
            return found

    def put(self, run_id: str, settled: Settled) -> None:
        if len(settled.history) > self._events_max:
            return
        with self._lock:
            old = self._runs.pop(run_id, None)
            self._events += len(settled.history) - (len(old.history) if old else 0)
            self._runs[run_id] = settled
            while len(self._runs) > self._runs_max or self._events > self._events_max:
                _, dropped = self._runs.popitem(last=False)
                self._events -= len(dropped.history)

    def clear(self) -> None:
        """Forget every run (the next view of each reads it again)."""
        with self._lock:
            self._runs.clear()
            self._events = 0


_KEPT: weakref.WeakKeyDictionary[Any, _Kept] = weakref.WeakKeyDictionary()
_KEPT_LOCK = threading.Lock()


def kept(lf: Ledgerflow) -> _Kept:
    """The settled parts kept for `lf`'s database (one per engine, gone with it)."""
    with _KEPT_LOCK:
        found = _KEPT.get(lf.db)
        if found is None:
            found = _KEPT[lf.db] = _Kept(SETTLED, SETTLED_EVENTS)
        return found


def gather(lf: Ledgerflow, who: Principal, run_id: str) -> RunDetail:
    """The detail of the run `run_id` names (its id or a unique prefix), if the caller
    may see it (`UnknownRun` otherwise, as the API)."""
    topic, keep = lf.settings.topic, kept(lf)
    with lf.db.connect() as conn:
        run = queries.find_run(conn, run_id, tenant_id=who.tenant)  # as `visible_run`
        settled = keep.get(run.run_id, run.version)
        if settled is None:
            settled = _settle(lf, conn, run)
        else:
            asked = [e for e, state in settled.delivery.items() if state in UNSETTLED]
            if asked:
                settled = _redelivered(settled, outbox.delivery(conn, topic, asked))
        resumed_by, _ = queries.list_runs(conn, resumed_from=run.run_id, tenant_id=who.tenant,
                                          limit=LINEAGE_SHOWN)
        reruns, _ = queries.list_runs(conn, rerun_of=run.run_id, tenant_id=who.tenant,
                                      limit=LINEAGE_SHOWN)
    if settled.history and settled.history[-1].version == run.version:
        keep.put(run.run_id, settled)  # else the run moved on while it was read
    counts = Counter(settled.delivery.values())
    counts["none"] = len(settled.history) - len(settled.delivery)
    return RunDetail(run, settled, dict(counts), resumed_by, reruns)


def _settle(lf: Ledgerflow, conn: Any, run: queries.RunRecord) -> Settled:
    """The run's settled part, read and rendered now."""
    history = queries.history(lf.store, run.run_id)
    journal = queries.get_journal(conn, run.run_id)
    delivery = outbox.delivery(conn, lf.settings.topic, [h.event_id for h in history])
    steps, axis = bars(run, journal, history)
    version = history[-1].version if history else 0
    return Settled(version, history, steps, axis, _rows.journal(steps), delivery,
                   _rows.timeline(history, delivery))


def _redelivered(settled: Settled, fresh: dict[str, str]) -> Settled:
    """`settled` with the delivery states just read (a row gone: purged once published)."""
    delivery = dict(settled.delivery)
    for event_id in [e for e, state in delivery.items() if state in UNSETTLED]:
        delivery[event_id] = fresh.get(event_id, "published")
    if delivery == settled.delivery:
        return settled
    return replace(settled, delivery=delivery,
                   timeline_html=_rows.timeline(settled.history, delivery))
