"""History at scale: the tamper-evident audit of runs and the archival of old ones.

- `audit_run` / `audit_all`: a run's history checked against its hash chain.
- `Archiver`, `RetentionPolicy`, `ArchiveFiles`: finished runs past their retention
  move to gzip JSON-lines files (and come back with `Archiver.restore`).
- `Ledgerflow.archiver()` builds the archiver the settings and workflows describe.
"""

from ledgerflow.history._files import ArchivedRun, ArchiveFiles
from ledgerflow.history.archive import Archiver, ArchiveReport, RetentionPolicy
from ledgerflow.history.audit import AuditReport, audit_all, audit_run

__all__ = [
    "ArchiveFiles", "ArchiveReport", "ArchivedRun", "Archiver", "AuditReport",
    "RetentionPolicy", "audit_all", "audit_run",
]
