"""What every CLI command shares: settings, console, one-line errors."""

from __future__ import annotations

from rich.console import Console

from ledgerflow.settings import Settings

console = Console()
err_console = Console(stderr=True)


def open_settings() -> Settings:
    return Settings()
