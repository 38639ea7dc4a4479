"""ledgerflow: durable workflows for Python with an event-sourced run lifecycle."""

__all__: list[str] = []
