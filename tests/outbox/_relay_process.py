"""Subprocess entry of the crash test: one relay batch, with armed fault points.

The parent arms them through `LEDGERFLOW_FAULTS` (e.g. `relay.published=kill`: the
process SIGKILLs itself after the broker acknowledged the batch and before the rows
are marked published). This module is the process's edge: it reads them from
`Settings` and gives them to the relay, as `ledgerflow relay` does.

    python -m tests.outbox._relay_process DATABASE_URL BOOTSTRAP
"""

from __future__ import annotations

import sys

from ledgerflow import Settings
from ledgerflow.eventstore import create_engine
from ledgerflow.outbox import KafkaPublisher, Relay


def main(argv: list[str]) -> None:
    url, bootstrap = argv
    relay = Relay(create_engine(url), KafkaPublisher(bootstrap, timeout_s=10),
                  fault_point=Settings().fault_points())
    relay.run_once()


if __name__ == "__main__":
    main(sys.argv[1:])
