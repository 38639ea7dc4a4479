"""The publisher contract on the JSON-lines sink (the embedded default's destination)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgerflow.outbox import JsonlSinkPublisher, Publisher
from tests.outbox.contract import PublisherContract, ReadBack, Received


class TestJsonlSinkPublisher(PublisherContract):
    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        return tmp_path / "events.jsonl"

    @pytest.fixture
    def publisher(self, path: Path) -> Iterator[Publisher]:
        sink = JsonlSinkPublisher(path)
        yield sink
        sink.close()

    @pytest.fixture
    def unreachable(self, tmp_path: Path) -> Iterator[Publisher]:
        sink = JsonlSinkPublisher(tmp_path / "no such directory" / "events.jsonl")
        yield sink
        sink.close()

    @pytest.fixture
    def read_back(self, path: Path) -> ReadBack:
        def read(topic: str, expected: int) -> list[Received]:
            lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
            return [Received(line["topic"], line["key"], line["value"],
                             list(line["headers"].items()))
                    for line in lines if line["topic"] == topic]
        return read
