"""Transactional outbox relayed to Kafka (being built)."""

from eventstore.migrations import Migration

MIGRATIONS: list[Migration] = []

__all__ = ["MIGRATIONS"]
