"""Runs per status (`projections._counts`): the counter rows the run views projection
keeps equal a COUNT(*) over the run views, inline and after a rebuild, on both
databases; the finished runs' counts do not scan the run views."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.eventstore import EventStore
from ledgerflow.projections import default_projections, rebuild
from ledgerflow.projections._counts import SHARDS, count_batches, run_counts, shard_of
from ledgerflow.projections._schema import run_status_counts, run_views
from tests.projections._gen import append_interleaved, draw_runs
from tests.projections.test_rebuild import _empty


def _counted(store: EventStore) -> dict[str, int]:
    """The truth: a COUNT(*) per status over the run views."""
    found = {s.value: 0 for s in RunStatus}
    with store.engine.connect() as conn:
        for status, n in conn.execute(sa.select(run_views.c.status, sa.func.count())
                                      .group_by(run_views.c.status)):
            found[status] = n
    return found


def _counts(store: EventStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return run_counts(conn)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_counts_equal_a_count_inline_and_after_rebuild(store: EventStore,
                                                       data: st.DataObject) -> None:
    _empty(store.engine)
    append_interleaved(store, data, draw_runs(data))
    truth = _counted(store)
    assert _counts(store) == truth

    rebuild(store, default_projections(), batch_size=data.draw(st.integers(1, 9)))
    assert _counts(store) == truth


def test_a_mix_of_finished_runs_counts_each_once(store: EventStore) -> None:
    """Enough runs that several share a shard: every terminal status, counted once."""
    from ledgerflow.domain import events as ev
    from ledgerflow.domain.metadata import run_metadata
    from ledgerflow.eventstore import NewEvent, StreamAppend

    _empty(store.engine)
    endings: list[ev.Event] = [
        ev.RunCompleted(result=1), ev.RunFailed(error=ev.ErrorInfo(type="E", message="m")),
        ev.RunCanceled(reason="no")]
    for i in range(3 * SHARDS + 5):
        run = f"mix-{i}"
        meta = run_metadata("checkout", "1")
        created = ev.RunCreated(workflow_id="checkout", workflow_version="1")
        ending = [] if i % 7 == 6 else [ev.RunStarted(), endings[i % 3]]
        store.append(StreamAppend(run, [NewEvent(e, metadata=meta)
                                        for e in [created, *ending]]))
    assert _counts(store) == _counted(store)
    assert _counted(store)["pending"] == sum(1 for i in range(3 * SHARDS + 5) if i % 7 == 6)
    with store.engine.connect() as conn:
        shards = conn.execute(sa.select(sa.func.count()).select_from(run_status_counts)
                              ).scalar_one()
    assert shards > 3  # spread over shards, not one hot row per status


def test_a_batch_sums_per_row_in_key_order(store: EventStore) -> None:
    runs = [f"r{i}" for i in range(40)]
    from ledgerflow.eventstore.database import backend_for

    [(_, rows)] = count_batches(
        backend_for(store.engine), run_status_counts,
        [(r, "completed" if i % 2 else "failed") for i, r in enumerate(runs)])
    keys = [(row["status"], row["shard"]) for row in rows]
    assert keys == sorted(set(keys))  # one row per key, in lock order
    assert sum(row["runs"] for row in rows) == 40
    assert {row["shard"] for row in rows} <= set(range(SHARDS))
    assert shard_of("r1") == shard_of("r1")


@pytest.mark.parametrize("finished", [[]])
def test_nothing_finished_writes_nothing(store: EventStore, finished: list[tuple[str, str]]
                                         ) -> None:
    from ledgerflow.eventstore.database import backend_for

    assert count_batches(backend_for(store.engine), run_status_counts, finished) == []
