"""Read models rebuilt from the events: run views, step journal (being built)."""

from eventstore.migrations import Migration

MIGRATIONS: list[Migration] = []

__all__ = ["MIGRATIONS"]
