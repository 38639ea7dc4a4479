"""Subprocess entry of the crash test: one relay batch, with an armed fault point.

`LEDGERFLOW_TEST_FAULT=relay.published` (read once, here at startup) makes the
process SIGKILL itself after the broker acknowledged the batch and before the rows
are marked published.

    python -m tests.outbox._relay_process DATABASE_URL BOOTSTRAP
"""

from __future__ import annotations

import os
import signal
import sys

from ledgerflow.eventstore import create_engine
from ledgerflow.outbox import KafkaPublisher, Relay


def main(argv: list[str]) -> None:
    url, bootstrap = argv
    armed = os.environ.get("LEDGERFLOW_TEST_FAULT")

    def fault_point(name: str) -> None:
        if name == armed:
            os.kill(os.getpid(), signal.SIGKILL)

    relay = Relay(create_engine(url), KafkaPublisher(bootstrap, timeout_s=10),
                  fault_point=fault_point)
    relay.run_once()


if __name__ == "__main__":
    main(sys.argv[1:])
