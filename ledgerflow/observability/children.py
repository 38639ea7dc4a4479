"""The counters and histograms of worker child processes, summed into their host's
`/metrics`.

`ledgerflow worker --processes N` and `serve --worker-processes N` execute runs in
child processes under a supervisor (`cli.supervise`). Prometheus expects one target
per host that counts everything the host did, as for a single process, and the
number of children is an implementation detail (one per core by default), so the
children do not serve ports of their own: each writes its counters and histograms to
files in a directory the supervisor makes (prometheus-client's multiprocess mode,
`PROMETHEUS_MULTIPROC_DIR` in the children's environment), and the host's `/metrics`
(`--metrics-port` of the supervisor; the API's `/metrics` under `serve`) adds them
up per series, with the host's own. A child that exits leaves its files, so a
restarted child never makes a counter go backwards. The store gauges are read once,
by the host, not once per child.

Interface: `ChildrenDirectory` (`.path`, the environment a child needs, `remove()`),
`ProcessFamilies(own, directory)`: a collector of the host's own counters and
histograms (`own`, a registry) plus those found in `directory` (None: none).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Where a child writes its counters (read by prometheus-client as the process starts)."""


class ChildrenDirectory:
    """A fresh directory for the children's counter files, removed by `remove()`."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="ledgerflow-metrics-"))

    def env(self) -> dict[str, str]:
        """What a child's environment needs to count into this directory."""
        return {ENV: str(self.path)}

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class ProcessFamilies(Collector):
    """The host's own counters and histograms (`own`) with the children's (files in
    `directory`) added per series: one family per name, as Prometheus requires."""

    def __init__(self, own: CollectorRegistry, directory: Path | None = None) -> None:
        self.own, self.directory = own, directory

    def collect(self) -> Iterator[Metric]:
        families = {family.name: family for family in self.own.collect()}
        if self.directory is None:
            yield from families.values()
            return
        files = [str(f) for f in sorted(self.directory.glob("*.db"))]
        merged: list[Metric] = MultiProcessCollector.merge(  # type: ignore[no-untyped-call]
            files, accumulate=True)
        for child in merged:
            mine = families.get(child.name)
            families[child.name] = child if mine is None else _summed(mine, child)
        yield from families.values()


def _summed(mine: Metric, theirs: Metric) -> Metric:
    """`mine` with the values of `theirs` added per (sample name, labels)."""
    values: dict[tuple[str, tuple[tuple[str, str], ...]], Sample] = {}
    for sample in [*mine.samples, *theirs.samples]:
        key = (sample.name, tuple(sorted(sample.labels.items())))
        seen = values.get(key)
        values[key] = sample if seen is None else seen._replace(value=seen.value + sample.value)
    summed = Metric(mine.name, mine.documentation, mine.type, mine.unit)
    summed.samples = list(values.values())
    return summed
