"""The "webhook.deliver" handler: one signed attempt of one message to one endpoint.

Each attempt checks the target again (``targets.py``) and connects to the address it checked,
never follows a redirect, waits at most the timeout, and reads a bounded part of the answer.
Then ONE transaction completes the job under its claim, logs the attempt, updates the
endpoint (a success clears ``failing_since``; a failure sets it, and five days of failures
disable the endpoint) and, after a failure, enqueues the next attempt at the schedule's next
step. A crash between the send and that commit sends the attempt again with the same
``webhook-id`` (receivers deduplicate on it); nothing is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from snapreport.errors import InvalidInput, WebhookUrlRefused
from snapreport.logs import get_logger
from snapreport.orders.database import writer
from snapreport.outbox.base import OutboxJob
from snapreport.outbox.senders.inapp import ClaimLost
from snapreport.outbox.sqlalchemy import complete_in, enqueue
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


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to."""

    status_code: int | None
    error: str | None
    response: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def build_client() -> httpx.AsyncClient:
    """The webhook HTTP client: no redirects, no proxies from the environment, no pooling
    beyond a bound."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )


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
        self, targets: TargetCheck, client: httpx.AsyncClient, *, timeout_seconds: float
    ) -> None:
        self._targets = targets
        self._client = client
        self._timeout = timeout_seconds

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """One POST of ``body`` to ``url`` (checked again here), within the timeout."""
        try:
            target = await self._targets.check(url)
        except WebhookUrlRefused as exc:
            return Outcome(None, f"refused ({exc.reason}): {exc.message}", None)
        request_url = httpx.URL(url).copy_with(host=target.address)
        extensions = {"sni_hostname": target.host} if request_url.scheme == "https" else {}
        headers = {**headers, "host": urlsplit(url).netloc}
        try:
            async with asyncio.timeout(self._timeout):
                async with self._client.stream(
                    "POST",
                    request_url,
                    content=body,
                    headers=headers,
                    extensions=extensions,
                    timeout=self._timeout,
                ) as response:
                    snippet = await _read_bounded(response)
        except TimeoutError:
            return Outcome(None, f"no answer within {self._timeout:g} s", None)
        except httpx.HTTPError as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS], None)
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(status, None, snippet)
        if 300 <= status < 400:
            return Outcome(status, f"HTTP {status}: redirects are not followed", snippet)
        return Outcome(status, f"HTTP {status}", snippet)


class WebhookSender:
    """The "webhook.deliver" handler (see module doc)."""

    def __init__(self, engine: AsyncEngine, poster: Poster, *, clock: Clock = time.time) -> None:
        self._reads = async_sessionmaker(engine, expire_on_commit=False)
        self._sessions = async_sessionmaker(writer(engine), expire_on_commit=False)
        self._poster = poster
        self._clock = clock

    async def __call__(self, job: OutboxJob) -> None:
        message_id, attempt, retry = _job_fields(job)
        async with self._reads() as session:
            found = (
                await session.execute(
                    select(WebhookMessageRow, WebhookEndpointRow)
                    .join(
                        WebhookEndpointRow, WebhookEndpointRow.id == WebhookMessageRow.endpoint_id
                    )
                    .where(WebhookMessageRow.id == message_id)
                )
            ).first()
        if found is None or found[1].disabled_at is not None:
            # the endpoint was deleted or disabled: nothing to send
            await self._complete(job)
            return
        message, endpoint = found
        timestamp = int(self._clock())
        in_use = [endpoint.secret]
        until = endpoint.previous_secret_until
        if endpoint.previous_secret and until is not None and until.timestamp() > timestamp:
            in_use.append(endpoint.previous_secret)
        body = message.body.encode()
        headers = {
            "content-type": "application/json",
            "accept-encoding": "identity",
            "user-agent": "snapreport-webhooks",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(in_use, message_id, timestamp, body),
        }
        outcome = await self._poster.send(endpoint.url, body, headers)
        await self._record(job, endpoint.id, message, attempt, retry, outcome)

    async def _update_endpoint(
        self, session: AsyncSession, endpoint_id: str, outcome: Outcome, now: datetime
    ) -> bool:
        """Clear or start the endpoint's run of failures; True when this failure ends five
        days of them and disables it. Conditional updates: a success on a healthy endpoint
        (the common case) writes and locks nothing."""
        row = WebhookEndpointRow
        if outcome.ok:
            await session.execute(
                update(row)
                .where(row.id == endpoint_id, row.failing_since.is_not(None))
                .values(failing_since=None)
            )
            return False
        await session.execute(
            update(row)
            .where(row.id == endpoint_id, row.failing_since.is_(None))
            .values(failing_since=now)
        )
        disabled = await session.execute(
            update(row)
            .where(
                row.id == endpoint_id,
                row.disabled_at.is_(None),
                row.failing_since <= now - DISABLE_AFTER,
            )
            .values(disabled_at=now)
        )
        if disabled.rowcount:  # type: ignore[attr-defined]
            log.warning("webhook_endpoint_disabled", endpoint_id=endpoint_id)
            return True
        return False

    async def _complete(self, job: OutboxJob) -> None:
        async with self._sessions() as session, session.begin():
            if not await complete_in(session, job):
                raise ClaimLost(f"outbox job {job.id} is held by another worker now")

    async def _record(
        self,
        job: OutboxJob,
        endpoint_id: str,
        message: WebhookMessageRow,
        attempt: int,
        retry: int,
        outcome: Outcome,
    ) -> None:
        now = datetime.fromtimestamp(self._clock(), UTC)
        async with self._sessions() as session, session.begin():
            if not await complete_in(session, job):
                raise ClaimLost(f"outbox job {job.id} is held by another worker now")
            if await session.get(WebhookMessageRow, message.id) is None:
                return  # its endpoint was deleted while the attempt ran
            disabled = await self._update_endpoint(session, endpoint_id, outcome, now)
            next_at: datetime | None = None
            if not outcome.ok and not disabled and retry < len(RETRY_SCHEDULE):
                next_at = now + RETRY_SCHEDULE[retry]
                enqueue(
                    session,
                    deliver_job(message.id, attempt=attempt + 1, retry=retry + 1, due_at=next_at),
                    now=now,
                )
            session.add(
                WebhookAttemptRow(
                    endpoint_id=endpoint_id,
                    message_id=message.id,
                    event_type=message.event_type,
                    attempt=attempt,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    response=outcome.response,
                    at=now,
                    next_attempt_at=next_at,
                )
            )
        if not outcome.ok:  # successes are in the delivery log; failures are news
            log.warning(
                "webhook_attempt_failed",
                endpoint_id=endpoint_id,
                message_id=message.id,
                attempt=attempt,
                status_code=outcome.status_code,
                error=outcome.error,
                next_attempt_at=next_at.isoformat() if next_at else None,
            )


async def _read_bounded(response: httpx.Response) -> str:
    """The first ``MAX_RESPONSE_BYTES`` of the answer as text (the rest is not read)."""
    data = bytearray()
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= MAX_RESPONSE_BYTES:
            break
    return bytes(data[:MAX_RESPONSE_BYTES]).decode("utf-8", "replace")[:MAX_SNIPPET_CHARS]
