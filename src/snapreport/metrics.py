"""Prometheus metrics, one ``CollectorRegistry`` per application (never the global one).

``Metrics`` holds the instruments; ``TimedVision`` and ``ObservedSessionStore`` are small
decorators that bootstrap wraps around the vision port and the session store, so the core code
knows nothing of metrics.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from snapreport.errors import SessionBusy
from snapreport.session.engine import SessionEngine
from snapreport.session.history import Message
from snapreport.session.stores.base import Lease, SessionPage, SessionStore
from snapreport.vision.base import Analysis, Image, Verification, VisionModel

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The instruments of one application, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.active_sessions = Gauge(
            "snapreport_active_sessions", "Sessions not yet expired (read at scrape).", registry=r
        )
        self.turns = Counter(
            "snapreport_turns", "Messages handled, by the state after them.", ["state"], registry=r
        )
        self._turns_by_state: dict[str, Counter] = {}
        self.duplicates = Counter(
            "snapreport_duplicate_messages",
            "Repeated message ids answered from memory.",
            registry=r,
        )
        self.expirations_noticed = Counter(
            "snapreport_expirations_noticed",
            "Sessions found expired while a report or close was pending.",
            registry=r,
        )
        self.lock_wait = Histogram(
            "snapreport_lock_wait_seconds",
            "Time spent taking a user's session lock.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.session_busy = Counter(
            "snapreport_session_busy", "Lock waits that ran out (SessionBusy).", registry=r
        )
        self.vlm_latency = Histogram(
            "snapreport_vlm_seconds",
            "Vision model calls, by operation and outcome.",
            ["operation", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "snapreport_errors", "Error answers, by error code.", ["code"], registry=r
        )
        self.requests = Histogram(
            "snapreport_http_request_seconds",
            "HTTP requests, by method and status.",
            ["method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def turn(self, state: str) -> None:
        """Count one handled message (children cached: ``labels()`` is slow per call)."""
        child = self._turns_by_state.get(state)
        if child is None:
            child = self._turns_by_state[state] = self.turns.labels(state)
        child.inc()

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class TimedVision:
    """A ``VisionModel`` that times every call of the one it wraps."""

    def __init__(self, inner: VisionModel, metrics: Metrics) -> None:
        self._inner = inner
        self._histogram = metrics.vlm_latency

    @property
    def inner(self) -> VisionModel:
        return self._inner

    @property
    def enabled(self) -> bool:
        return self._inner.enabled

    async def analyze(self, image: Image, catalog: Sequence[str], *, language: str) -> Analysis:
        with self._timed("analyze"):
            return await self._inner.analyze(image, catalog, language=language)

    async def verify_close(
        self, original: Image, close: Image, *, description: str, language: str
    ) -> Verification:
        with self._timed("verify_close"):
            return await self._inner.verify_close(
                original, close, description=description, language=language
            )

    async def chat(
        self, messages: Sequence[Message], images: Mapping[str, Image], *, language: str
    ) -> str:
        with self._timed("chat"):
            return await self._inner.chat(messages, images, language=language)

    @contextlib.contextmanager
    def _timed(self, operation: str) -> Iterator[None]:
        """Observe the call's duration, labelled ``ok`` or ``error`` by how it ended."""
        started = time.perf_counter()
        outcome = "error"
        try:
            yield
            outcome = "ok"
        finally:
            if self._inner.enabled:  # the manual mode answers instantly: not a model latency
                elapsed = time.perf_counter() - started
                self._histogram.labels(operation, outcome).observe(elapsed)

    async def aclose(self) -> None:
        await self._inner.aclose()


ExpiryCheck = Callable[[str, bytes], bool]


class _Head(msgspec.Struct, array_like=True):
    """The leading and trailing fields of a stored session record; the bulky middle (slots
    and history) is skipped, not decoded."""

    state: str
    slots: msgspec.Raw
    turns: msgspec.Raw
    version: int
    created_at: float
    updated_at: float


_head_decoder = msgspec.msgpack.Decoder(_Head)


def expired_while_pending(engine: SessionEngine) -> ExpiryCheck:
    """A check whether a stored blob is a session that expired while not idle.

    It runs on every turn, so it reads only the record's head; a record it cannot read that
    way (the layout changed) is decoded in full instead.
    """
    ttl = engine.config.ttl_seconds

    def check(user_id: str, blob: bytes) -> bool:
        try:
            head = _head_decoder.decode(blob)
            state, updated_at = head.state, head.updated_at
        except msgspec.DecodeError:
            session = engine.codec.decode(user_id, blob)
            state, updated_at = session.state, session.updated_at
        return state != "idle" and engine.now() >= updated_at + ttl

    return check


class ObservedSessionStore:
    """A ``SessionStore`` that measures lock waits and notices pending sessions that expired.

    ``expiry_check`` (set once the engine exists) tells whether a loaded blob is a session
    that expired while a report or close was pending; the engine will notice it in this turn.
    """

    def __init__(self, inner: SessionStore, metrics: Metrics) -> None:
        self.inner = inner
        self._metrics = metrics
        self.expiry_check: ExpiryCheck | None = None

    async def acquire(self, user_id: str, *, timeout: float) -> Lease:  # noqa: ASYNC109
        started = time.perf_counter()
        try:
            lease = await self.inner.acquire(user_id, timeout=timeout)
        except SessionBusy:
            self._metrics.session_busy.inc()
            raise
        finally:
            self._metrics.lock_wait.observe(time.perf_counter() - started)
        check = self.expiry_check
        if lease.blob is not None and check is not None and check(user_id, lease.blob):
            self._metrics.expirations_noticed.inc()
        return lease

    async def commit(
        self, lease: Lease, blob: bytes | None, *, expires_at: float, keep_until: float
    ) -> None:
        await self.inner.commit(lease, blob, expires_at=expires_at, keep_until=keep_until)

    async def release(self, lease: Lease) -> None:
        await self.inner.release(lease)

    async def load(self, user_id: str) -> bytes | None:
        return await self.inner.load(user_id)

    async def count_active(self, now: float) -> int:
        return await self.inner.count_active(now)

    async def page_active(self, now: float, cursor: str | None, limit: int) -> SessionPage:
        return await self.inner.page_active(now, cursor, limit)

    async def purge_expired(self, now: float, limit: int) -> int:
        return await self.inner.purge_expired(now, limit)

    async def ping(self) -> None:
        await self.inner.ping()

    async def aclose(self) -> None:
        await self.inner.aclose()
