"""A Python client of a `ledgerflow serve`'s HTTP API: `Client` (blocking) and
`AsyncClient` (asyncio), over httpx.

```python
from ledgerflow.client import Client

with Client("http://127.0.0.1:8000", token="...") as lf:
    run = lf.trigger("checkout", {"orderId": "o-1"}, idempotency_key="o-1")
    for chunk in lf.stream(run.run_id):
        print(chunk.chunk, end="")
    print(lf.wait(run.run_id).result)
```

Results are the records the API declares (`RunRecord`, `HistoryEntry`, `JournalEntry`,
`DeadLetter`, `WorkflowInfo`, `StreamEntry`); errors are the engine's exceptions
(`UnknownRun`, `IllegalTransition`, `RunConflict`, `InvalidInput`, ...), or
`RemoteError` for what only the API decides (auth, tenancy, sizes).
"""

from ledgerflow.client._async import AsyncClient
from ledgerflow.client._errors import RemoteError, error_from
from ledgerflow.client._sync import Client
from ledgerflow.projections.queries import StreamEntry

__all__ = ["AsyncClient", "Client", "RemoteError", "StreamEntry", "error_from"]
