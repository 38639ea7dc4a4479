"""Cross-process nudges: listen for runs that became due elsewhere (PostgreSQL).

A run made due by another process (a trigger from an API process with no worker,
a signal, a token, a child's result waking its parent, a stopping worker giving
its runs back) is announced with `pg_notify(RUNS_CHANNEL, <engine's worker id>)`
in the transaction that made it due (`Transaction.notify`), so listeners hear of
it only once it has committed. A `Worker` whose store's backend has notices
(PostgreSQL: LISTEN/NOTIFY) runs a `Listener` thread on a connection of its own:
each notice from another engine nudges one idle worker thread to claim, instead of
waiting for the next poll. Polling stays: timers, timeouts and back-off become due
without anyone announcing them, and a notice sent while no listener was connected
is not kept. SQLite has no notifications; its workers poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.engine import Engine as SAEngine

from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.store import Transaction

RUNS_CHANNEL = "ledgerflow_runs"

log = logging.getLogger("ledgerflow.listen")


def announce(tx: Transaction, sender: str) -> None:
    """A run became due in `tx`: tell the listening workers once it commits."""
    tx.notify(RUNS_CHANNEL, sender)


class Listener:
    """A thread that LISTENs on RUNS_CHANNEL and calls `nudge()` per notice from
    another sender than `own` (this process's own notices are nudged in memory)."""

    def __init__(self, db: SAEngine, own: str, nudge: Callable[[], object],
                 retry: float = 1.0) -> None:
        self._db, self._own, self._nudge, self._retry = db, own, nudge, retry
        self._backend = backend_for(db)
        self._halt = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ledgerflow-listener",
                                        daemon=True)

    def start(self) -> Listener:
        self._thread.start()
        return self

    def wait_listening(self, timeout: float) -> bool:
        """True once the LISTEN is in place (tests; notices before it are missed)."""
        return self._listening.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._halt.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._halt.is_set():
            try:
                self._listen()
            except Exception:  # the server went away: poll meanwhile, then reconnect
                self._listening.clear()
                log.warning("listener lost its connection; reconnecting", exc_info=True)
                self._halt.wait(self._retry)

    def _listen(self) -> None:
        for payload in self._backend.listen(self._db, RUNS_CHANNEL, self._listening,
                                            self._halt):
            if payload != self._own:
                self._nudge()
