"""`eventstore.records.new_id`: random version-4 UUIDs, distinct across forked workers."""

from __future__ import annotations

import os
import uuid

from ledgerflow.eventstore.records import new_id


def test_ids_are_version_4_uuids_and_do_not_repeat() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:500]:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_forked_worker_does_not_repeat_its_parents_ids() -> None:
    new_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: its next ids, then exit at once
        os.close(read)
        os.write(write, ",".join(new_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split(","))
    os.waitpid(pid, 0)
    parent = {new_id() for _ in range(5)}
    assert len(child) == 5 and not child & parent
