"""Archive files on a local directory and on an fsspec filesystem: what is added is
found again as it was, each run once, and a damaged file is refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledgerflow.eventstore.chain import StoredEvent, chain
from ledgerflow.history import ArchiveFiles


def _run(run_id: str, events: int) -> list[StoredEvent]:
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    rows = [StoredEvent(100 + n, run_id, n, str(uuid.uuid4()), "StepCompleted", 1,
                        {"step_id": f"s{n}", "result": {"x": n * 1.5}, "attempt": 1},
                        {"actor": "t"}, at, None) for n in range(1, events + 1)]
    return [row._replace(hash=digest) for row, digest in zip(rows, chain(rows), strict=True)]


@pytest.fixture(params=["local", "fsspec"])
def files(request: pytest.FixtureRequest, tmp_path: Path) -> ArchiveFiles:
    if request.param == "local":
        return ArchiveFiles(str(tmp_path / "archive"))
    pytest.importorskip("fsspec")
    return ArchiveFiles(f"memory://archive-{uuid.uuid4().hex}")


def test_runs_added_are_found_as_they_were_once_each(files: ArchiveFiles) -> None:
    a, b = _run("run-a", 3), _run("run-b", 2)
    first = files.add("2026-01-02", "order/eu", {"run-a": a})
    assert first.startswith("2026-01-02/order%2Feu.")
    files.add("2026-01-02", "order/eu", {"run-b": b, "run-a": _run("run-a", 1)})
    assert files.find("run-a") == a  # the first copy is kept as it was
    assert files.find("run-b") == b
    assert files.find("run-c") is None
    listed = [(r.run_id, r.workflow_id, r.day, r.events, r.head) for r in files.runs()]
    assert listed == [("run-a", "order/eu", "2026-01-02", 3, a[-1].hash),
                      ("run-b", "order/eu", "2026-01-02", 2, b[-1].hash)]


def test_a_damaged_file_is_refused(tmp_path: Path) -> None:
    files = ArchiveFiles(str(tmp_path))
    path = tmp_path / files.add("2026-01-02", "order", {"run-a": _run("run-a", 2)})
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ValueError, match="SHA-256"):
        files.find("run-a")


def test_a_url_without_fsspec_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(ValueError, match="needs fsspec"):
        ArchiveFiles("s3://bucket/ledgerflow")
