"""The session engine: ``async with engine.turn(user_id) as session`` and its friends.

A turn takes the user's lock FIRST, then loads, checks expiry, lets the caller mutate the
session, and commits atomically on a normal exit. On an exception nothing is written and the
lock is released. One user's turns run one at a time in arrival order; different users never
wait for each other (the store guarantees both).

::

    engine = SessionEngine(MemorySessionStore(clock=clock), EngineConfig(), clock=clock)
    async with engine.turn("alice") as session:
        if session.expired_from is not None:
            ...  # a report was pending when the last session expired: say so
        session.history.add_user("a photo of a blocked exit")
        session.state = "waiting_location"
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

import msgspec

from snapreport.errors import InvalidInput, SessionBusy, SessionNotFound, SnapreportError
from snapreport.logs import get_logger
from snapreport.session.history import DEFAULT_MAX_TEXT_CHARS, DEFAULT_MAX_TURNS
from snapreport.session.model import ExpiredSession, Session, SessionCodec, check_user_id
from snapreport.session.stores.base import Lease, SessionStore

Clock = Callable[[], float]


class TurnObserver(Protocol):
    """What a turn tells an observer (the metrics), if the engine has one."""

    def lock_waited(self, seconds: float, *, busy: bool) -> None:
        """A lock wait ended: taken, or ``busy`` (``SessionBusy``)."""
        ...

    def expiry_noticed(self, expired: ExpiredSession) -> None:
        """A turn found its session expired while a report or close was pending."""
        ...


DEFAULT_TTL_SECONDS = 600.0
DEFAULT_LOCK_TIMEOUT_SECONDS = 60.0
# an expired pending session is kept this long so its expiry can be noticed at the next message
DEFAULT_NOTICE_GRACE_SECONDS = 86_400.0
# records per purge step of the sweeper: on the memory store a step holds the event loop for
# well under a millisecond, so requests never wait long behind it
DEFAULT_SWEEP_BATCH = 256
MAX_PAGE = 1000

log = get_logger("snapreport.session")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """How long sessions live, how much history they keep, how long a turn waits for its lock,
    and how long an expired pending session is kept so that its expiry can be noticed."""

    ttl_seconds: float = DEFAULT_TTL_SECONDS
    max_turns: int = DEFAULT_MAX_TURNS
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS
    notice_grace_seconds: float = DEFAULT_NOTICE_GRACE_SECONDS

    def __post_init__(self) -> None:
        if not self.ttl_seconds > 0:
            raise ValueError("ttl_seconds must be positive")
        if self.max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        if self.max_text_chars < 1:
            raise ValueError("max_text_chars must be at least 1")
        if not self.lock_timeout_seconds > 0:
            raise ValueError("lock_timeout_seconds must be positive")
        if not self.notice_grace_seconds >= 0:
            raise ValueError("notice_grace_seconds cannot be negative")


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A read-only look at a session (``peek``): it does not refresh expiry."""

    session: Session
    expires_at: float
    expired: bool


@dataclass(frozen=True, slots=True)
class ActivePage:
    """A page of live sessions ordered by user id; pass ``next_cursor`` for the next one."""

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
        observer: TurnObserver | None = None,
    ) -> None:
        self.store = store
        self.config = config or EngineConfig()
        self.observer = observer
        self.codec = SessionCodec(
            max_turns=self.config.max_turns, max_text_chars=self.config.max_text_chars
        )
        self._clock = clock
        self._last_now = float("-inf")

    def now(self) -> float:
        """The injected clock, never going backwards (expiry order relies on it)."""
        now = self._clock()
        if now < self._last_now:
            return self._last_now
        self._last_now = now
        return now

    # -- turns -----------------------------------------------------------------------------

    def turn(self, user_id: str) -> Turn:
        """``async with engine.turn(user_id) as session:`` — see the module docstring.

        Raises ``InvalidUserId`` at once; on entry ``SessionBusy`` (the lock wait ran out) or
        ``StoreUnavailable``; on exit what ``Session.validate`` raises, ``LockLost`` or
        ``StoreUnavailable``, and then nothing was written.
        """
        return Turn(self, check_user_id(user_id))

    def _open(self, user_id: str, blob: bytes | None) -> Session:
        now = self.now()
        session = self._decode(user_id, blob) if blob is not None else None
        if session is None:
            return self.codec.new(user_id, now)
        ttl = self.config.ttl_seconds
        if now < session.updated_at + ttl:
            return session
        fresh = self.codec.new(user_id, now)
        fresh.version = session.version  # the count of commits carries over an expiry
        fresh.language = session.language  # and so does the language the user chose
        if session.state != "idle":
            fresh.expired_from = ExpiredSession(
                session.state, session.slots, session.updated_at + ttl
            )
            if self.observer is not None:
                self.observer.expiry_noticed(fresh.expired_from)
        return fresh

    def _decode(self, user_id: str, blob: bytes) -> Session | None:
        """The stored session, or None (logged) if its blob cannot be read: one bad record
        must not lock its user out until it expires."""
        try:
            return self.codec.decode(user_id, blob)
        except msgspec.DecodeError as exc:
            log.warning("session_unreadable", user_id=user_id, error=str(exc))
            return None

    async def _commit(self, lease: Lease, session: Session) -> None:
        session.validate()
        now = self.now()
        version = session.version + 1
        try:
            blob = self.codec.encode(session, version=version, updated_at=now)
        except (msgspec.EncodeError, TypeError, ValueError, OverflowError) as exc:
            # validate() and History.add() refuse everything known; this is the safety net
            raise InvalidInput(f"the session cannot be stored: {exc}") from None
        expires_at = now + self.config.ttl_seconds
        keep_until = expires_at
        if session.state != "idle":
            keep_until += self.config.notice_grace_seconds
        await self.store.commit(lease, blob, expires_at=expires_at, keep_until=keep_until)
        session.version, session.updated_at = version, now

    # -- reading ---------------------------------------------------------------------------

    async def peek(self, user_id: str) -> SessionInfo | None:
        """The session as stored, without locking or refreshing it; None if there is none."""
        blob = await self.store.load(check_user_id(user_id))
        session = self._decode(user_id, blob) if blob is not None else None
        if session is None:
            return None
        expires_at = session.updated_at + self.config.ttl_seconds
        return SessionInfo(session, expires_at, expires_at <= self.now())

    async def get_live(self, user_id: str) -> Session:
        """The live session of a user, or ``SessionNotFound``; does not refresh expiry."""
        info = await self.peek(user_id)
        if info is None or info.expired:
            raise SessionNotFound(f"no active session for user {user_id!r}")
        return info.session

    async def active_count(self) -> int:
        """How many sessions are live (not expired) now."""
        return await self.store.count_active(self.now())

    async def list_active(self, cursor: str | None = None, limit: int = 50) -> ActivePage:
        """A page of live sessions ordered by user id, starting after ``cursor``."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        if cursor is not None:
            check_user_id(cursor)
        page = await self.store.page_active(self.now(), cursor, limit)
        sessions = [self._decode(user_id, blob) for user_id, blob in page.items]
        return ActivePage([s for s in sessions if s is not None], page.next_cursor)

    # -- changing outside a turn -----------------------------------------------------------

    async def clear(self, user_id: str) -> bool:
        """Delete the user's session (state, slots and history). True if there was one."""
        user_id = check_user_id(user_id)
        lease = await self.store.acquire(user_id, timeout=self.config.lock_timeout_seconds)
        try:
            await self.store.commit(lease, None, expires_at=0.0, keep_until=0.0)
        except BaseException:
            await _release_quietly(self.store, lease)
            raise
        return lease.blob is not None

    async def reset(self, user_id: str) -> None:
        """Back to ``idle`` with empty slots, history kept (the seed's ``reset()``), in a turn."""
        async with self.turn(user_id) as session:
            session.reset()

    # -- expiry ----------------------------------------------------------------------------

    async def purge_expired(self, limit: int = 4096) -> int:
        """Expire or drop up to ``limit`` records whose time has passed; how many it did."""
        return await self.store.purge_expired(self.now(), limit)

    async def run_sweeper(
        self, interval_seconds: float = 5.0, batch: int = DEFAULT_SWEEP_BATCH
    ) -> None:
        """Purge expired sessions off the request path, until cancelled.

        Every ``interval_seconds`` it purges in steps of ``batch`` records and yields to the
        event loop between steps, so a request never waits behind more than one step. A store
        that fails is logged and tried again at the next interval.
        """
        while True:
            try:
                done = await self.purge_expired(batch)
            except (SnapreportError, OSError) as exc:
                log.warning("session_sweep_failed", error=str(exc))
                done = 0
            # a full step means there may be more: go on at once, after pending requests
            await asyncio.sleep(0 if done >= batch else interval_seconds)


class Turn:
    """One locked load-mutate-commit of a user's session (an async context manager)."""

    __slots__ = ("_engine", "_lease", "_session", "user_id")

    def __init__(self, engine: SessionEngine, user_id: str) -> None:
        self._engine = engine
        self.user_id = user_id
        self._lease: Lease | None = None
        self._session: Session | None = None

    async def __aenter__(self) -> Session:
        if self._lease is not None:
            raise RuntimeError("a turn cannot be entered twice at once")
        engine = self._engine
        if engine.observer is None:
            lease = await engine.store.acquire(
                self.user_id, timeout=engine.config.lock_timeout_seconds
            )
        else:
            lease = await _observed_acquire(engine, engine.observer, self.user_id)
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
        if lease is None or session is None:
            raise RuntimeError("the turn was not entered")
        self._lease = self._session = None
        if exc_type is not None:
            await _release_quietly(self._engine.store, lease)
            return
        try:
            await self._engine._commit(lease, session)
        except BaseException:
            await _release_quietly(self._engine.store, lease)
            raise


async def _observed_acquire(engine: SessionEngine, observer: TurnObserver, user_id: str) -> Lease:
    started = time.perf_counter()
    busy = False
    try:
        return await engine.store.acquire(user_id, timeout=engine.config.lock_timeout_seconds)
    except SessionBusy:
        busy = True
        raise
    finally:
        observer.lock_waited(time.perf_counter() - started, busy=busy)


async def _release_quietly(store: SessionStore, lease: Lease) -> None:
    """Release after a failure; a failing release must not hide the original error."""
    with contextlib.suppress(SnapreportError, OSError, asyncio.CancelledError):
        await asyncio.shield(store.release(lease))
