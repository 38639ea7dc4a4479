"""Configuration, read once at the edge (CLI / server start) and passed down."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledgerflow.eventstore.database import DEFAULT_URL
from ledgerflow.outbox import DEFAULT_MAX_EVENT_BYTES
from ledgerflow.runtime.faults import FaultPoints


class Settings(BaseSettings):
    """The `LEDGERFLOW_*` environment variables (each field is one: `database_url` is
    `LEDGERFLOW_DATABASE_URL`). The README's "Settings" table lists them all with their
    defaults; a new field gets a row there."""

    model_config = SettingsConfigDict(env_prefix="LEDGERFLOW_", extra="ignore")

    database_url: str = DEFAULT_URL
    kafka_bootstrap: str | None = None
    api_tokens: str | None = None
    workflows: str | None = None
    sink_path: str = "./ledgerflow-events.jsonl"
    topic: str = "ledgerflow.run-events"
    dlq_topic: str = "ledgerflow.run-events.dlq"
    outbox_max_attempts: int = Field(default=10, ge=1)
    outbox_publish_timeout: float = Field(default=30.0, gt=0)
    outbox_on_dead: Literal["hold", "skip"] = "hold"
    outbox_retention_hours: float = Field(default=168.0, ge=0)
    """How long the relay keeps published outbox rows (then purges them); 0: forever."""
    lease_seconds: float = Field(default=30.0, gt=0)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_event_bytes: int = Field(default=DEFAULT_MAX_EVENT_BYTES, gt=0)
    """The largest event an append accepts (its data and metadata JSON, in bytes); by
    default what kafka-python's default `max_request_size` leaves once the outbox has
    wrapped it (`outbox._writer.ENVELOPE_ALLOWANCE`). Raise it together with the
    producer's `max_request_size` and the broker's `message.max.bytes`."""
    debug: bool = False
    """CLI errors show their traceback (as `--debug`)."""
    faults: str | None = None
    """Fault points to arm, for crash tests (`name=exit:CODE,other=raise,third=kill`)."""
    log_format: Literal["text", "json"] | None = None
    """Log lines as text or JSON; unset: text on a terminal, JSON otherwise."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    metrics_cache_seconds: float = Field(default=5.0, ge=0)
    """How long a reading of the store's gauges is reused by `/metrics` scrapes."""
    doctor_outbox_warn_seconds: float = Field(default=60.0, ge=0)
    doctor_outbox_fail_seconds: float = Field(default=600.0, ge=0)
    doctor_overdue_warn_seconds: float = Field(default=60.0, ge=0)
    doctor_overdue_fail_seconds: float = Field(default=600.0, ge=0)
    doctor_dead_warn: int = Field(default=1, ge=1)
    """Dead letters from which `doctor` warns (default: any)."""
    doctor_projection_lag_warn: int = Field(default=10_000, ge=1)
    doctor_clock_skew_warn_seconds: float = Field(default=2.0, ge=0)
    stream_max_seconds: float = Field(default=300.0, gt=0)
    """How long one `GET /api/runs/{id}/stream` response stays open before it ends
    (the reader reconnects from its last position)."""
    server: str | None = None
    """The CLI's `--server`: run commands go to this `ledgerflow serve` over HTTP
    instead of the database."""
    api_token: str | None = None
    """The bearer token the CLI sends with `--server` (as `--token`)."""
    retention_days: float | None = Field(default=None, gt=0)
    """Finished runs older than this are archived (unset: kept, unless their workflow
    says `retention=`)."""
    archive_dir: str = "./ledgerflow-archive"
    """Where archived runs go: a directory, or an fsspec URL (needs fsspec)."""
    archive_interval_seconds: float = Field(default=3600.0, gt=0)
    """How often `serve` archives the runs past their retention."""

    dispatch: str | None = None
    """Where runs execute, per workflow: `name=URL` (a handler mounted in your service,
    `ledgerflow.asgi_handler`) or `name=inline` (here, the default); `*` for the rest."""
    dispatch_secret: str | None = None
    """The secret dispatch requests are signed with (workers and handlers share it)."""
    dispatch_timeout_seconds: float = Field(default=300.0, gt=0)
    """How long a worker waits for a handler's answer before it retries the run."""
    dispatch_budget_seconds: float = Field(default=1.0, ge=0)
    """A handler answers once a step ends past this, and the worker writes what is done
    before it posts again (0: after every step, as an inline run writes; more: fewer
    round trips, but a crash may re-run the steps of the last budget)."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("faults")
    @classmethod
    def _faults_parse(cls, value: str | None) -> str | None:
        FaultPoints.parse(value)  # a malformed value fails at the edge, clearly
        return value

    def fault_points(self) -> FaultPoints:
        """The fault points `faults` arms (none when unset)."""
        return FaultPoints.parse(self.faults)

    def outbox_retention(self) -> timedelta | None:
        """How long published outbox rows are kept; None: forever (retention 0)."""
        hours = self.outbox_retention_hours
        return timedelta(hours=hours) if hours > 0 else None

    def workflow_modules(self) -> list[str]:
        return [m.strip() for m in (self.workflows or "").split(",") if m.strip()]

    def token_tenants(self) -> dict[str, str]:
        """`token=tenant` pairs; tenant `*` sees every tenant."""
        pairs: dict[str, str] = {}
        for item in (self.api_tokens or "").split(","):
            if not item.strip():
                continue
            token, sep, tenant = item.strip().partition("=")
            if not sep or not token or not tenant:
                raise ValueError(
                    f"LEDGERFLOW_API_TOKENS entry {item.strip()!r} is not of the form token=tenant")
            pairs[token] = tenant
        return pairs
