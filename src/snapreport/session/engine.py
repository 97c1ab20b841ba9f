"""The session engine: ``async with engine.turn(user_id) as session`` and its friends.

A turn takes the user's lock FIRST, then loads, checks expiry, lets the caller mutate the
session, and commits atomically on a normal exit. On an exception nothing is written and the
lock is released. One user's turns run one at a time in arrival order; different users never
wait for each other (the store guarantees both).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from snapreport.errors import InvalidInput, SessionNotFound, SnapreportError
from snapreport.session.history import DEFAULT_MAX_TEXT_CHARS, DEFAULT_MAX_TURNS
from snapreport.session.model import ExpiredSession, Session, SessionCodec, check_user_id
from snapreport.session.stores.base import Lease, SessionStore

Clock = Callable[[], float]

DEFAULT_TTL_SECONDS = 600.0
DEFAULT_LOCK_TIMEOUT_SECONDS = 60.0
# an expired pending session is kept this long so its expiry can be noticed at the next message
DEFAULT_NOTICE_GRACE_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True)
class EngineConfig:
    ttl_seconds: float = DEFAULT_TTL_SECONDS
    max_turns: int = DEFAULT_MAX_TURNS
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS
    notice_grace_seconds: float = DEFAULT_NOTICE_GRACE_SECONDS


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A read-only look at a session (``peek``): it does not refresh expiry."""

    session: Session
    expires_at: float
    expired: bool


@dataclass(frozen=True, slots=True)
class ActivePage:
    sessions: list[Session]
    next_cursor: str | None


class SessionEngine:
    """Runs turns against a ``SessionStore``; the one way code reads or changes sessions."""

    def __init__(
        self,
        store: SessionStore,
        config: EngineConfig | None = None,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.config = config or EngineConfig()
        self.codec = SessionCodec(
            max_turns=self.config.max_turns, max_text_chars=self.config.max_text_chars
        )
        self._clock = clock
        self._last_now = 0.0

    def now(self) -> float:
        """The injected clock, never going backwards (expiry order relies on it)."""
        now = self._clock()
        if now < self._last_now:
            return self._last_now
        self._last_now = now
        return now

    def turn(self, user_id: str) -> Turn:
        """``async with engine.turn(user_id) as session:`` — see the module docstring."""
        return Turn(self, check_user_id(user_id))

    def _open(self, user_id: str, blob: bytes | None) -> Session:
        now = self.now()
        if blob is None:
            return self.codec.new(user_id, now)
        session = self.codec.decode(user_id, blob)
        if not session.is_expired(now, self.config.ttl_seconds):
            return session
        fresh = self.codec.new(user_id, now)
        fresh.version = session.version
        if session.state != "idle":
            fresh.expired_from = ExpiredSession(
                session.state, session.slots, session.expires_at(self.config.ttl_seconds)
            )
        return fresh

    async def _commit(self, lease: Lease, session: Session) -> None:
        session.validate()
        now = self.now()
        session.updated_at = now
        session.version += 1
        expires_at = now + self.config.ttl_seconds
        keep_until = expires_at
        if session.state != "idle":
            keep_until += self.config.notice_grace_seconds
        blob = self.codec.encode(session)
        await self.store.commit(lease, blob, expires_at=expires_at, keep_until=keep_until)

    async def peek(self, user_id: str) -> SessionInfo | None:
        """The session as stored, without locking or refreshing it; None if there is none."""
        blob = await self.store.load(check_user_id(user_id))
        if blob is None:
            return None
        session = self.codec.decode(user_id, blob)
        expires_at = session.expires_at(self.config.ttl_seconds)
        return SessionInfo(session, expires_at, expires_at <= self.now())

    async def get_live(self, user_id: str) -> Session:
        """The live session of a user, or ``SessionNotFound``; does not refresh expiry."""
        info = await self.peek(user_id)
        if info is None or info.expired:
            raise SessionNotFound(f"no active session for user {user_id!r}")
        return info.session

    async def clear(self, user_id: str) -> bool:
        """Delete the user's session (state, slots and history). True if there was one."""
        user_id = check_user_id(user_id)
        lease = await self.store.acquire(user_id, timeout=self.config.lock_timeout_seconds)
        existed = lease.blob is not None
        try:
            await self.store.commit(lease, None, expires_at=0.0, keep_until=0.0)
        except BaseException:
            await _release_quietly(self.store, lease)
            raise
        return existed

    async def active_count(self) -> int:
        return await self.store.count_active(self.now())

    async def list_active(self, cursor: str | None = None, limit: int = 50) -> ActivePage:
        """A page of live sessions ordered by user id."""
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000")
        page = await self.store.page_active(self.now(), cursor, limit)
        return ActivePage(
            [self.codec.decode(user_id, blob) for user_id, blob in page.items], page.next_cursor
        )

    async def purge_expired(self, limit: int = 4096) -> int:
        return await self.store.purge_expired(self.now(), limit)

    async def run_sweeper(self, interval_seconds: float = 5.0, batch: int = 4096) -> None:
        """Purge expired sessions in small batches, off the request path, until cancelled."""
        while True:
            while await self.purge_expired(batch) == batch:
                await asyncio.sleep(0)
            await asyncio.sleep(interval_seconds)


class Turn:
    """One locked load-mutate-commit of a user's session (an async context manager)."""

    __slots__ = ("_engine", "_lease", "_session", "user_id")

    def __init__(self, engine: SessionEngine, user_id: str) -> None:
        self._engine = engine
        self.user_id = user_id
        self._lease: Lease | None = None
        self._session: Session | None = None

    async def __aenter__(self) -> Session:
        engine = self._engine
        lease = await engine.store.acquire(
            self.user_id, timeout=engine.config.lock_timeout_seconds
        )
        try:
            session = engine._open(self.user_id, lease.blob)
        except BaseException:
            await _release_quietly(engine.store, lease)
            raise
        self._lease, self._session = lease, session
        return session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lease, session = self._lease, self._session
        assert lease is not None and session is not None, "turn was not entered"
        self._lease = self._session = None
        if exc_type is not None:
            await _release_quietly(self._engine.store, lease)
            return
        try:
            await self._engine._commit(lease, session)
        except BaseException:
            await _release_quietly(self._engine.store, lease)
            raise


async def _release_quietly(store: SessionStore, lease: Lease) -> None:
    """Release after a failure; a failing release must not hide the original error."""
    try:
        await asyncio.shield(store.release(lease))
    except (SnapreportError, OSError, asyncio.CancelledError):
        pass
