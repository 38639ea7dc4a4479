"""`Observer`: what the executor tells the process about steps and runs as they end.

The executor calls it on the hot path, so an observer does in-memory work only
(counters, histograms): no SQL, no I/O. The default observes nothing;
`ledgerflow.observability.metrics.Metrics` counts. `Runtime.observer` holds one.
"""

from __future__ import annotations

from datetime import datetime

from ledgerflow.domain import events as ev


class Observer:
    """Observes nothing. Subclasses override what they count."""

    def step_ended(self, workflow: str, event: ev.StepCompleted | ev.StepFailed,
                   now: datetime) -> None:
        """An attempt of a step completed or failed (`event.started_at` is its start)."""

    def run_ended(self, workflow: str, status: str) -> None:
        """A run completed, failed or was canceled (`status`), in this process."""


NO_OBSERVER = Observer()
