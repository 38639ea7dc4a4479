"""Abandoned producers end: repeated broker outages leave no thread behind.

Against the session's Tansu broker, stopped and started again on the same port
(memory storage: it comes back empty, without topics).
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kafka.producer.sender import Sender

from ledgerflow.outbox import KafkaPublisher, OutboundMessage
from tests._broker import TansuBroker
from tests.outbox._support import wait_until


def _network_threads() -> int:
    """Live kafka-python I/O threads: producers' senders, admin clients' loops."""
    return sum(1 for t in threading.enumerate()
               if t.is_alive() and (isinstance(t, Sender) or t.name.startswith("kafka-io-")))


@pytest.fixture
def unraisable() -> Iterator[list[Any]]:
    """What Python reports as "Exception ignored in ..." (a producer's __del__)."""
    seen: list[Any] = []
    previous, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        yield seen
    finally:
        sys.unraisablehook = previous


def test_producer_threads_do_not_pile_up_over_repeated_outages(
        tansu: TansuBroker, unraisable: list[Any]) -> None:
    before = _network_threads()
    publisher = KafkaPublisher(tansu.bootstrap, timeout_s=2)
    message = OutboundMessage("lf-outage-threads", "run-1", b"{}", [])
    alive: list[int] = []
    try:
        for _ in range(3):
            assert publisher.publish([message]) == [None]
            tansu.stop()  # the record below is never acknowledged
            assert publisher.publish([message])[0] is not None
            tansu.start()
            assert publisher.publish([message]) == [None]
            wait_until(lambda: _network_threads() <= before + 1, timeout_s=15,
                       what="the abandoned producer's network thread to end")
            alive.append(_network_threads() - before)
    finally:
        publisher.close()
    assert alive == [1, 1, 1]  # one live producer, whatever happened before
    wait_until(lambda: _network_threads() == before, what="close() to end the producer")
    del publisher
    gc.collect()
    assert [u.exc_value for u in unraisable] == []
