"""The run queue (being built)."""

from eventstore.migrations import Migration

MIGRATIONS: list[Migration] = []
