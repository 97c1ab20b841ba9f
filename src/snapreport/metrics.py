"""Prometheus metrics, one ``CollectorRegistry`` per application (never the global one).

``Metrics`` holds the instruments and is the session engine's ``TurnObserver`` (lock waits,
expirations noticed); ``TimedVision`` is the decorator bootstrap wraps around the vision port.
The core code knows nothing of metrics.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from snapreport.session.history import Message
from snapreport.session.model import ExpiredSession
from snapreport.vision.base import Analysis, Image, TextQuery, Verification, VisionModel

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
        self.outbox = OutboxMetrics(r)

    def turn(self, state: str) -> None:
        """Count one handled message (children cached: ``labels()`` is slow per call)."""
        child = self._turns_by_state.get(state)
        if child is None:
            child = self._turns_by_state[state] = self.turns.labels(state)
        child.inc()

    def lock_waited(self, seconds: float, *, busy: bool) -> None:
        """The engine's ``TurnObserver``: one lock wait, and whether it ran out."""
        self.lock_wait.observe(seconds)
        if busy:
            self.session_busy.inc()

    def expiry_noticed(self, expired: ExpiredSession) -> None:
        """The engine's ``TurnObserver``: a session expired while a report or close was
        pending (``session.expired_from``)."""
        self.expirations_noticed.inc()

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class TimedVision:
    """A ``VisionModel`` that times every call of the one it wraps."""

    def __init__(self, inner: VisionModel, metrics: Metrics) -> None:
        self._inner = inner
        self._histogram = metrics.vlm_latency

    @property
    def enabled(self) -> bool:
        return self._inner.enabled

    async def analyze(self, image: Image, catalog: Sequence[str], *, language: str) -> Analysis:
        with self._timed("analyze"):
            return await self._inner.analyze(image, catalog, language=language)

    async def verify_close(
        self,
        original: Image,
        close: Image,
        *,
        description: str,
        language: str,
        more: Sequence[Image] = (),
    ) -> Verification:
        with self._timed("verify_close"):
            return await self._inner.verify_close(
                original, close, description=description, language=language, more=more
            )

    async def chat(
        self, messages: Sequence[Message], images: Mapping[str, Image], *, language: str
    ) -> str:
        with self._timed("chat"):
            return await self._inner.chat(messages, images, language=language)

    async def understand(self, query: TextQuery, *, language: str) -> dict[str, Any]:
        with self._timed("understand"):
            return await self._inner.understand(query, language=language)

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


class OutboxMetrics:
    """The outbox's instruments; an ``OutboxObserver`` for the worker. The pending and dead
    gauges are read from the database at scrape (every process sees the same rows)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.delivered_total = Counter(
            "snapreport_outbox_delivered", "Outbox jobs delivered, by topic.", ["topic"], registry=r
        )
        self.failed_total = Counter(
            "snapreport_outbox_failed",
            "Outbox delivery attempts that failed (retried or dead), by topic.",
            ["topic"],
            registry=r,
        )
        self.dead_total = Counter(
            "snapreport_outbox_dead", "Outbox jobs dead-lettered, by topic.", ["topic"], registry=r
        )
        self.lag = Histogram(
            "snapreport_outbox_lag_seconds",
            "From the change's commit (the message's creation) to its delivery.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.pending = Gauge(
            "snapreport_outbox_pending", "Outbox jobs waiting (read at scrape).", registry=r
        )
        self.dead_letters = Gauge(
            "snapreport_outbox_dead_letters",
            "Dead outbox jobs waiting for an admin (read at scrape).",
            registry=r,
        )

    def delivered(self, topic: str, lag_seconds: float) -> None:
        self.delivered_total.labels(topic).inc()
        self.lag.observe(lag_seconds)

    def failed(self, topic: str) -> None:
        self.failed_total.labels(topic).inc()

    def dead(self, topic: str) -> None:
        self.dead_total.labels(topic).inc()
