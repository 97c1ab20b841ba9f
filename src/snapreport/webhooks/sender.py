"""The "webhook.deliver" handler: one signed attempt of one message to one endpoint.

Each attempt checks the target again (``targets.py``), connects only to addresses that pass
the check (``CheckedResolver``; keep-alive connections are reused), never follows a redirect,
waits at most the timeout, and reads a bounded part of the answer. Then ONE transaction
completes the job under its claim, logs the attempt, updates the endpoint (a success clears
``failing_since``; a failure sets it, and five days of failures disable the endpoint) and,
after a failure, enqueues the next attempt at the schedule's next step. A crash between the
send and that commit sends the attempt again with the same ``webhook-id`` (receivers
deduplicate on it); nothing is lost.

The attempts the worker runs at the same time share their reads and that transaction (group
commit, ``outbox.batching``): one query loads a round's messages with their endpoints, one
transaction records a round's outcomes, each job still completed only under its own claim.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from snapreport.errors import InvalidInput, WebhookUrlRefused
from snapreport.logs import get_logger
from snapreport.orders.database import writer
from snapreport.outbox.base import OutboxJob
from snapreport.outbox.batching import Batcher
from snapreport.outbox.senders.inapp import ClaimLost
from snapreport.outbox.sqlalchemy import (
    complete_held_in,
    enqueue_many,
    parallel_writes,
    store_guard,
)
from snapreport.webhooks.base import DISABLE_AFTER, RETRY_SCHEDULE
from snapreport.webhooks.signing import signature_header
from snapreport.webhooks.store import deliver_job
from snapreport.webhooks.tables import (
    WebhookAttemptRow,
    WebhookEndpointRow,
    WebhookMessageRow,
)
from snapreport.webhooks.targets import TargetCheck

log = get_logger("snapreport.webhooks")

Clock = Callable[[], float]
MAX_RESPONSE_BYTES = 4096  # read of an answer; the rest is never downloaded
MAX_SNIPPET_CHARS = 1000  # kept in the delivery log
MAX_ERROR_CHARS = 500
MAX_CONNECTIONS = 200  # open at once, over every endpoint


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to."""

    status_code: int | None
    error: str | None
    response: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


class CheckedResolver(AbstractResolver):
    """The webhook client's resolver: the addresses ``TargetCheck`` allows, nothing else
    (a refused name raises ``WebhookUrlRefused`` and no connection is made)."""

    def __init__(self, targets: TargetCheck) -> None:
        self._targets = targets

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        found = await self._targets.addresses(host, port)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in found
        ]

    async def close(self) -> None:
        return None


def build_session(targets: TargetCheck) -> aiohttp.ClientSession:
    """The webhook HTTP client (call within the running loop): one keep-alive pool for every
    endpoint, connections only to addresses ``targets`` allows, no proxies from the
    environment, no redirects (``Poster`` asks for none), at most ``MAX_CONNECTIONS``."""
    connector = aiohttp.TCPConnector(
        resolver=CheckedResolver(targets), use_dns_cache=False, limit=MAX_CONNECTIONS
    )
    return aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False)


def _job_fields(job: OutboxJob) -> tuple[str, int, int]:
    message_id = job.payload.get("message_id")
    attempt = job.payload.get("attempt")
    retry = job.payload.get("retry")
    if (
        not isinstance(message_id, str)
        or not isinstance(attempt, int)
        or not isinstance(retry, int)
    ):
        raise InvalidInput("a webhook.deliver job needs message_id, attempt and retry")
    return message_id, attempt, retry


class Poster:
    """One POST to a target checked just before it (see module doc)."""

    def __init__(
        self, targets: TargetCheck, client: aiohttp.ClientSession, *, timeout_seconds: float
    ) -> None:
        self._targets = targets
        self._client = client
        self._timeout = timeout_seconds

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """One POST of ``body`` to ``url`` (checked again here), within the timeout."""
        try:
            await self._targets.check(url)
            async with asyncio.timeout(self._timeout):
                async with self._client.post(
                    url,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self._timeout),
                ) as response:
                    status = response.status
                    snippet = await _read_bounded(response)
        except WebhookUrlRefused as exc:
            return Outcome(None, f"refused ({exc.reason}): {exc.message}", None)
        except TimeoutError:
            return Outcome(None, f"no answer within {self._timeout:g} s", None)
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS], None)
        if 200 <= status < 300:
            return Outcome(status, None, snippet)
        if 300 <= status < 400:
            return Outcome(status, f"HTTP {status}: redirects are not followed", snippet)
        return Outcome(status, f"HTTP {status}", snippet)


@dataclass(frozen=True, slots=True)
class _Message:
    """A message and what of its endpoint an attempt needs."""

    id: str
    event_type: str
    body: bytes
    endpoint_id: str
    url: str
    secrets: tuple[str, ...]  # the current secret, then the previous one while it still signs
    disabled: bool


@dataclass(frozen=True, slots=True)
class _Tried:
    """One attempt made: attempt ``attempt`` of ``message`` (``retry`` retries used)."""

    message: _Message
    attempt: int
    retry: int
    outcome: Outcome
    at: datetime


@dataclass(frozen=True, slots=True)
class _Record:
    """What one handler call leaves to write: the job's completion and the attempt it made
    (None: the message is gone or its endpoint disabled; the job is only completed)."""

    job: OutboxJob
    tried: _Tried | None


class WebhookSender:
    """The "webhook.deliver" handler (see module doc)."""

    completes_own_jobs = True  # in the transaction that records the attempt (see ``Routes``)

    def __init__(self, engine: AsyncEngine, poster: Poster, *, clock: Clock = time.time) -> None:
        self._reads = async_sessionmaker(engine, expire_on_commit=False)
        self._sessions = async_sessionmaker(writer(engine), expire_on_commit=False)
        self._poster = poster
        self._clock = clock
        parallel = parallel_writes(engine)
        self._loads: Batcher[str, _Message | None] = Batcher(self._load, parallel=parallel)
        self._records: Batcher[_Record, None] = Batcher(self._write, parallel=parallel)

    async def __call__(self, job: OutboxJob) -> None:
        message_id, attempt, retry = _job_fields(job)
        message = await self._loads.submit(message_id)
        if message is None or message.disabled:
            # the endpoint was deleted or disabled: nothing to send
            await self._records.submit(_Record(job, None))
            return
        timestamp = int(self._clock())
        headers = {
            "content-type": "application/json",
            "accept-encoding": "identity",
            "user-agent": "snapreport-webhooks",
            "webhook-id": message.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                message.secrets, message.id, timestamp, message.body
            ),
        }
        outcome = await self._poster.send(message.url, message.body, headers)
        tried = _Tried(message, attempt, retry, outcome, self._now())
        await self._records.submit(_Record(job, tried))

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def _load(self, message_ids: Sequence[str]) -> list[_Message | None]:
        """The messages of one round of attempts, with their endpoints: one query."""
        m, e = WebhookMessageRow, WebhookEndpointRow
        query = (
            select(
                m.id,
                m.event_type,
                m.body,
                e.id,
                e.url,
                e.secret,
                e.previous_secret,
                e.previous_secret_until,
                e.disabled_at,
            )
            .join(e, e.id == m.endpoint_id)
            .where(m.id.in_(set(message_ids)))
        )
        async with store_guard("reading webhook messages"), self._reads() as session:
            rows = (await session.execute(query)).all()
        now = self._clock()
        found: dict[str, _Message] = {}
        for row in rows:
            in_use = [row[5]]
            previous, until = row[6], row[7]
            if previous and until is not None and until.timestamp() > now:
                in_use.append(previous)
            found[row[0]] = _Message(
                id=row[0],
                event_type=row[1],
                body=row[2].encode(),
                endpoint_id=row[3],
                url=row[4],
                secrets=tuple(in_use),
                disabled=row[8] is not None,
            )
        return [found.get(message_id) for message_id in message_ids]

    async def _write(self, records: Sequence[_Record]) -> list[Exception | None]:
        """One transaction for a round of attempts: the jobs' completions (under their
        claims), the endpoints' failure clocks, the next attempts and the log rows."""
        now = self._now()
        logged: list[tuple[_Tried, datetime | None]] = []
        async with (
            store_guard("recording webhook attempts"),
            self._sessions() as session,
            session.begin(),
        ):
            held = await complete_held_in(session, [r.job for r in records])
            tried = [r.tried for r in records if r.job.id in held and r.tried is not None]
            if tried:
                # a message deleted meanwhile (with its endpoint) is not logged
                existing = set(
                    (
                        await session.scalars(
                            select(WebhookMessageRow.id).where(
                                WebhookMessageRow.id.in_({t.message.id for t in tried})
                            )
                        )
                    ).all()
                )
                tried = [t for t in tried if t.message.id in existing]
            if tried:
                disabled = await _update_endpoints(session, tried, now)
                logged = await _log_attempts(session, tried, disabled, now)
        for t, next_at in logged:
            if not t.outcome.ok:  # successes are in the delivery log; failures are news
                log.warning(
                    "webhook_attempt_failed",
                    endpoint_id=t.message.endpoint_id,
                    message_id=t.message.id,
                    attempt=t.attempt,
                    status_code=t.outcome.status_code,
                    error=t.outcome.error,
                    next_attempt_at=next_at.isoformat() if next_at else None,
                )
        return [
            None
            if r.job.id in held
            else ClaimLost(f"outbox job {r.job.id} is held by another worker now")
            for r in records
        ]


async def _update_endpoints(
    session: AsyncSession, tried: Sequence[_Tried], now: datetime
) -> set[str]:
    """Clear or start each endpoint's run of failures by its last outcome in ``tried``; the
    endpoints whose failure ends five days of them, now disabled. Conditional updates: a
    success on a healthy endpoint (the common case) changes nothing."""
    last: dict[str, bool] = {}
    succeeded: set[str] = set()
    for t in tried:
        last[t.message.endpoint_id] = t.outcome.ok
        if t.outcome.ok:
            succeeded.add(t.message.endpoint_id)
    healthy = [e for e, ok in last.items() if ok]
    failing = [e for e, ok in last.items() if not ok]
    row = WebhookEndpointRow
    if healthy:
        await session.execute(
            update(row)
            .where(row.id.in_(healthy), row.failing_since.is_not(None))
            .values(failing_since=None)
            .execution_options(synchronize_session=False)
        )
    if not failing:
        return set()
    # failing again after a success in this very round: the run starts now
    again = [e for e in failing if e in succeeded]
    if again:
        await session.execute(
            update(row)
            .where(row.id.in_(again))
            .values(failing_since=now)
            .execution_options(synchronize_session=False)
        )
    await session.execute(
        update(row)
        .where(row.id.in_(failing), row.failing_since.is_(None))
        .values(failing_since=now)
        .execution_options(synchronize_session=False)
    )
    disabled = set(
        (
            await session.execute(
                update(row)
                .where(
                    row.id.in_(failing),
                    row.disabled_at.is_(None),
                    row.failing_since <= now - DISABLE_AFTER,
                )
                .values(disabled_at=now)
                .returning(row.id)
                .execution_options(synchronize_session=False)
            )
        )
        .scalars()
        .all()
    )
    for endpoint_id in sorted(disabled):
        log.warning("webhook_endpoint_disabled", endpoint_id=endpoint_id)
    return disabled


async def _log_attempts(
    session: AsyncSession, tried: Sequence[_Tried], disabled: set[str], now: datetime
) -> list[tuple[_Tried, datetime | None]]:
    """The log rows of ``tried`` and, after each failure, its next attempt on the schedule
    (none once the schedule is used up or the endpoint disabled)."""
    logged: list[tuple[_Tried, datetime | None]] = []
    retries = []
    for r in tried:
        next_at: datetime | None = None
        if (
            not r.outcome.ok
            and r.message.endpoint_id not in disabled
            and r.retry < len(RETRY_SCHEDULE)
        ):
            next_at = r.at + RETRY_SCHEDULE[r.retry]
            retries.append(
                deliver_job(r.message.id, attempt=r.attempt + 1, retry=r.retry + 1, due_at=next_at)
            )
        logged.append((r, next_at))
    await enqueue_many(session, retries, now=now)
    # RETURNING makes it one statement a page (SQLAlchemy's "insertmanyvalues")
    await session.execute(
        insert(cast(Table, WebhookAttemptRow.__table__)).returning(WebhookAttemptRow.id),
        [
            {
                "endpoint_id": r.message.endpoint_id,
                "message_id": r.message.id,
                "event_type": r.message.event_type,
                "attempt": r.attempt,
                "status_code": r.outcome.status_code,
                "error": r.outcome.error,
                "response": r.outcome.response,
                "at": r.at,
                "next_attempt_at": next_at,
            }
            for r, next_at in logged
        ],
    )
    return logged


async def _read_bounded(response: aiohttp.ClientResponse) -> str:
    """The first ``MAX_RESPONSE_BYTES`` of the answer as text (the rest is not read, and the
    connection is then closed rather than reused)."""
    data = bytearray()
    while len(data) < MAX_RESPONSE_BYTES:
        chunk = await response.content.read(MAX_RESPONSE_BYTES - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data).decode("utf-8", "replace")[:MAX_SNIPPET_CHARS]
