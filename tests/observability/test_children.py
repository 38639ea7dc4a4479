"""A host's `/metrics` sums its worker children's counters with its own
(`observability.children`): the children count in prometheus-client's multiprocess
files, each a real process here."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from ledgerflow.domain import events as ev
from ledgerflow.eventstore import EventStore, create_engine
from ledgerflow.migrations import upgrade_all
from ledgerflow.observability.children import ChildrenDirectory
from ledgerflow.observability.metrics import Metrics

CHILD = """
import sys
from datetime import UTC, datetime, timedelta
from ledgerflow.domain import events as ev
from ledgerflow.eventstore import EventStore, create_engine
from ledgerflow.observability.metrics import Metrics

metrics = Metrics(EventStore(create_engine("sqlite://")))
now = datetime.now(UTC)
for _ in range(int(sys.argv[1])):
    metrics.step_ended("pay", ev.StepCompleted(step_id="charge", result=None,
                                               started_at=now - timedelta(seconds=0.2)), now)
    metrics.run_ended("pay", "completed")
"""


def _child(counters: ChildrenDirectory, runs: int) -> None:
    subprocess.run([sys.executable, "-c", CHILD, str(runs)], env=counters.env(), check=True,
                   timeout=120)


def _store(tmp_path: Path) -> Engine:
    db = create_engine(f"sqlite:///{tmp_path}/lf.db")
    upgrade_all(db)
    return db


def test_the_hosts_metrics_add_up_its_own_and_every_childs_counts(tmp_path: Path) -> None:
    db = _store(tmp_path)
    counters = ChildrenDirectory()
    try:
        metrics = Metrics(EventStore(db), cache_seconds=0)
        metrics.run_ended("pay", "completed")  # one run ended in the host itself
        metrics.count_children(counters)
        _child(counters, 2)
        _child(counters, 3)  # a second child (or a restarted one): its own files
        text = metrics.render().decode()
    finally:
        counters.remove()
        db.dispose()
    families = [f.name for f in text_string_to_metric_families(text)]
    assert len(families) == len(set(families)), families  # one family per name
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("ledgerflow_runs_finished_total",
                    frozenset({("workflow", "pay"), ("status", "completed")}))] == 6
    step = frozenset({("workflow", "pay"), ("step", "charge"), ("outcome", "completed")})
    assert samples[("ledgerflow_step_duration_seconds_count", step)] == 5
    assert samples[("ledgerflow_step_duration_seconds_bucket", step | {("le", "0.25")})] == 5
    assert samples[("ledgerflow_step_duration_seconds_bucket", step | {("le", "0.1")})] == 0


def test_without_children_the_metrics_are_this_process_alone(tmp_path: Path) -> None:
    db = _store(tmp_path)
    try:
        metrics = Metrics(EventStore(db), cache_seconds=0)
        now = datetime.now(UTC)
        metrics.step_ended("pay", ev.StepCompleted(step_id="charge", result=None,
                                                   started_at=now), now)
        text = metrics.render().decode()
    finally:
        db.dispose()
    assert ('ledgerflow_step_duration_seconds_count{outcome="completed",step="charge",'
            'workflow="pay"} 1.0') in text
