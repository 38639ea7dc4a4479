"""Retry policy of a step: how many attempts, and the delay before each retry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

Backoff = Literal["exponential", "linear", "fixed"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`max_attempts` includes the first; delays grow by `backoff` up to `max_delay`."""

    max_attempts: int = 1
    backoff: Backoff = "exponential"
    initial_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.backoff not in ("exponential", "linear", "fixed"):
            raise ValueError(
                f"backoff must be 'exponential', 'linear' or 'fixed', not {self.backoff!r}")
        if self.initial_delay < timedelta(0) or self.max_delay < timedelta(0):
            raise ValueError("retry delays must not be negative")

    def delay_after(self, attempt: int) -> timedelta:
        """The wait before attempt `attempt + 1`, after attempt `attempt` failed."""
        if self.backoff == "fixed":
            delay = self.initial_delay
        elif self.backoff == "linear":
            delay = self.initial_delay * attempt
        else:
            delay = self.initial_delay * (2 ** (attempt - 1))
        return min(delay, self.max_delay)
