"""Archive files: one gzip JSON-lines file per day and workflow, with a manifest.

Layout under the archive root (`LEDGERFLOW_ARCHIVE_DIR`: a local directory, or an
fsspec URL such as `s3://bucket/ledgerflow` when fsspec is installed):

    <root>/<YYYY-MM-DD>/<workflow>.manifest.json
    <root>/<YYYY-MM-DD>/<workflow>.<sha256 prefix>.jsonl.gz

The day is the day (UTC) a run finished; `<workflow>` is the workflow id, percent-
encoded. Each line is one event as stored (`_line`), a run's events together and in
version order, hashes included. The manifest names the data file, its SHA-256 and
size, and per run its event count, head hash and positions.

Writing is crash-safe: a batch adding runs to a day writes a NEW data file (old
runs and new), flushes and fsyncs it and its directory, then replaces the manifest
the same way (write aside, fsync, rename, fsync the directory): the manifest's
rename is the commit. A crash before it leaves the old manifest and file as they
were (plus a data file no manifest names, which nothing reads); after it, the new
ones.
On an fsspec filesystem the same order is kept with what it offers (no fsync).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from ledgerflow.eventstore import StoredEvent
from ledgerflow.eventstore.chain import recorded_text

FORMAT = 1


@dataclass(frozen=True)
class ArchivedRun:
    """A run as a manifest lists it."""

    run_id: str
    workflow_id: str
    day: str
    events: int
    head: str | None
    file: str


def _line(row: StoredEvent) -> bytes:
    return orjson.dumps({
        "stream": row.stream_id, "position": row.position, "version": row.version,
        "eventId": row.event_id, "type": row.type, "schemaVersion": row.schema_version,
        "data": _value(row.data), "metadata": _value(row.metadata),
        "recordedAt": recorded_text(row.recorded_at), "hash": row.hash,
    }) + b"\n"


def _value(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _row(line: bytes) -> StoredEvent:
    item = orjson.loads(line)
    return StoredEvent(item["position"], item["stream"], item["version"], item["eventId"],
                       item["type"], item["schemaVersion"], item["data"], item["metadata"],
                       datetime.fromisoformat(item["recordedAt"]), item["hash"])


class _Local:
    """A local directory, with fsync."""

    def __init__(self, root: str) -> None:
        self.root = Path(root.removeprefix("file://"))

    def read(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, path: str, data: bytes) -> None:
        """`data` at `path`, durably: written aside, fsynced, renamed, directory fsynced."""
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        aside = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        with open(aside, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(aside, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def remove(self, path: str) -> None:
        (self.root / path).unlink(missing_ok=True)

    def listing(self, suffix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix()
                      for p in self.root.glob(f"*/*{suffix}"))


class _Remote:
    """An fsspec filesystem (optional dependency)."""

    def __init__(self, url: str) -> None:
        try:
            import fsspec  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError:
            raise ValueError(f"LEDGERFLOW_ARCHIVE_DIR={url!r} is a URL: archiving there needs "
                             "fsspec (pip install fsspec), or give a local directory") from None
        self.fs, self.root = fsspec.core.url_to_fs(url)

    def _path(self, path: str) -> str:
        return f"{self.root.rstrip('/')}/{path}"

    def read(self, path: str) -> bytes | None:
        try:
            with self.fs.open(self._path(path), "rb") as source:
                data: bytes = source.read()
                return data
        except FileNotFoundError:
            return None

    def write(self, path: str, data: bytes) -> None:
        aside = self._path(f"{path}.{uuid.uuid4().hex[:8]}.tmp")
        with self.fs.open(aside, "wb") as out:
            out.write(data)
        self.fs.mv(aside, self._path(path))

    def remove(self, path: str) -> None:
        if self.fs.exists(self._path(path)):
            self.fs.rm(self._path(path))

    def listing(self, suffix: str) -> list[str]:
        prefix = self.root.rstrip("/") + "/"
        found = self.fs.glob(self._path(f"*/*{suffix}"))
        return sorted(str(p)[len(prefix):] if str(p).startswith(prefix) else str(p)
                      for p in found)


class ArchiveFiles:
    """The archive at `root` (a directory or an fsspec URL)."""

    def __init__(self, root: str) -> None:
        self.root = root
        remote = "://" in root and not root.startswith("file://")
        self._fs: _Local | _Remote = _Remote(root) if remote else _Local(root)

    def manifests(self) -> Iterator[dict[str, Any]]:
        for path in self._fs.listing(".manifest.json"):
            data = self._fs.read(path)
            if data is not None:
                yield orjson.loads(data)

    def runs(self) -> list[ArchivedRun]:
        """Every archived run, by day then workflow then run id."""
        return [ArchivedRun(run_id, manifest["workflow"], manifest["day"], entry["events"],
                            entry["head"], f"{manifest['day']}/{manifest['file']}")
                for manifest in self.manifests()
                for run_id, entry in sorted(manifest["runs"].items())]

    def find(self, run_id: str) -> list[StoredEvent] | None:
        """The archived events of `run_id` (the file's checksum checked), or None."""
        for manifest in self.manifests():
            if run_id in manifest["runs"]:
                return self._contents(manifest).get(run_id, [])
        return None

    def add(self, day: str, workflow_id: str, runs: Mapping[str, Sequence[StoredEvent]],
            ) -> str:
        """Add `runs` (run id -> its events) to the file of `day` and `workflow_id`,
        durably; runs already there are kept as they are. The data file's path."""
        name = quote(workflow_id, safe="")
        manifest_path = f"{day}/{name}.manifest.json"
        old_data = self._fs.read(manifest_path)
        old = orjson.loads(old_data) if old_data is not None else None
        every = dict(self._contents(old)) if old is not None else {}
        for run_id, rows in runs.items():
            every.setdefault(run_id, list(rows))
        body = b"".join(_line(row) for rows in every.values() for row in rows)
        data = gzip.compress(body, mtime=0)
        digest = hashlib.sha256(data).hexdigest()
        file = f"{name}.{digest[:16]}.jsonl.gz"
        self._fs.write(f"{day}/{file}", data)
        manifest = {
            "format": FORMAT, "day": day, "workflow": workflow_id, "file": file,
            "sha256": digest, "bytes": len(data), "events": sum(map(len, every.values())),
            "runs": {run_id: {"events": len(rows), "head": rows[-1].hash if rows else None,
                              "firstPosition": rows[0].position if rows else None,
                              "lastPosition": rows[-1].position if rows else None}
                     for run_id, rows in every.items()},
        }
        self._fs.write(manifest_path, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        if old is not None and old["file"] != file:
            self._fs.remove(f"{day}/{old['file']}")
        return f"{day}/{file}"

    def _contents(self, manifest: Mapping[str, Any]) -> dict[str, list[StoredEvent]]:
        path = f"{manifest['day']}/{manifest['file']}"
        data = self._fs.read(path)
        if data is None:
            raise ValueError(f"archive {self.root}: {path}, named by its manifest, is missing")
        if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
            raise ValueError(f"archive {self.root}: {path} does not match the SHA-256 its "
                             "manifest records: the file was changed or damaged")
        runs: dict[str, list[StoredEvent]] = {}
        for line in gzip.decompress(data).splitlines():
            row = _row(line)
            runs.setdefault(row.stream_id, []).append(row)
        return runs
