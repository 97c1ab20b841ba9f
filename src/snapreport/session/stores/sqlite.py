"""``SqliteSessionStore``: sessions in one SQLite file, shared by the processes of one machine.

Tables (WAL journal, ``synchronous=NORMAL``: a crashed process loses nothing committed; a power
cut may lose the last commits but never leaves a torn record)::

    sessions         user_id PK, blob, expires_at (indexed), keep_until (indexed)
    session_locks    user_id PK, token, owner, lease_until      one row per held lock
    session_waiters  seq AUTOINCREMENT, user_id, token, owner, deadline   the FIFO queue

Every change runs in a ``BEGIN IMMEDIATE`` transaction, which SQLite serialises across
processes, so a lock row is a lock that works across processes. A turn is two transactions:
acquire (take the lock row if free and nobody queues, read the blob) and commit (check the
token, upsert or delete the record, delete the lock row and hand it to the first live waiter).

Ordering guarantee: waiters are queued in the database in the order their acquire transactions
commit, which is arrival order within a process and across the processes of the machine; the
lock goes to the first waiter whose wait has not run out. A waiter in this process is woken at
once when a turn in this process hands it the lock; a waiter in another process notices within
``poll`` seconds (each process polls once for all its waiters, only while it has any).

A lock row outlives a crashed holder by at most ``lock_ttl``: this process renews its held locks
every ``lock_ttl / 3``; a waiting process reaps expired lock rows and hands the lock on.

The event loop never touches SQLite: one worker thread per store owns the connection, drains a
queue of operations and runs the writes it finds together in one transaction (group commit),
then hands the results back to the loop in one call. Cleanup (``purge_expired``) deletes an
index range of ``keep_until``; the engine's sweeper calls it off the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from snapreport.errors import ConfigurationError, LockLost, SessionBusy, StoreUnavailable
from snapreport.session.stores.base import Lease, SessionPage
from snapreport.sqlite_file import open_database

DEFAULT_LOCK_TTL_SECONDS: Final = 60.0
DEFAULT_POLL_SECONDS: Final = 0.005
DEFAULT_BUSY_TIMEOUT_SECONDS: Final = 10.0
MAX_BATCH: Final = 512

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    user_id TEXT PRIMARY KEY,
    blob BLOB NOT NULL,
    expires_at REAL NOT NULL,
    keep_until REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);
CREATE INDEX IF NOT EXISTS sessions_keep_until ON sessions (keep_until);
CREATE TABLE IF NOT EXISTS session_locks (
    user_id TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    owner TEXT NOT NULL,
    lease_until REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS session_waiters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    deadline REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS session_waiters_user ON session_waiters (user_id, seq);
"""

_UPSERT = (
    "INSERT INTO sessions (user_id, blob, expires_at, keep_until) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (user_id) DO UPDATE SET blob = excluded.blob, "
    "expires_at = excluded.expires_at, keep_until = excluded.keep_until"
)

Op = Callable[..., Any]


@dataclass(slots=True, eq=False)
class _Job:
    op: Op
    args: tuple[Any, ...]
    write: bool
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None


@dataclass(slots=True, eq=False)
class _Held:
    """A lock this store holds (``Lease.handle``)."""

    user_id: str
    token: str


class SqliteSessionStore:
    """Sessions in a SQLite file: survives restarts, correct across processes of one machine."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        lock_ttl: float = DEFAULT_LOCK_TTL_SECONDS,
        poll: float = DEFAULT_POLL_SECONDS,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
        renew: bool = True,
    ) -> None:
        if lock_ttl <= 0:
            raise ConfigurationError("lock_ttl must be positive")
        self._path = str(path)
        self._clock = clock  # expiry times come from the engine; locks use wall time
        self._lock_ttl = lock_ttl
        self._poll = poll
        self._reap_every = min(1.0, lock_ttl / 4)
        self._busy_timeout = busy_timeout
        self._renew = renew
        self._id = secrets.token_hex(6)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._grants: list[str] = []  # worker thread only: local waiters handed the lock
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._held: dict[str, _Held] = {}
        self._poller: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._closed = False

    # -- the worker thread -------------------------------------------------------------------

    def _start(self) -> None:
        if self._closed:
            raise StoreUnavailable("the sqlite session store is closed")
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._work, name=f"sqlite-sessions-{self._id}", daemon=True
        )
        self._thread.start()

    def _submit(self, op: Op, args: tuple[Any, ...], *, write: bool) -> asyncio.Future[Any]:
        if self._thread is None:
            self._start()
        elif not self._thread.is_alive() or self._closed:
            raise StoreUnavailable("the sqlite session store is closed")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            raise StoreUnavailable("the sqlite session store is bound to another event loop")
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put(_Job(op, args, write, future))
        return future

    def _fire(self, op: Op, *args: Any) -> None:
        """A write nobody waits for (its failure is ignored: the lock TTL covers it)."""
        future = self._submit(op, args, write=True)
        future.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def _write(self, op: Op, *args: Any) -> Any:
        return await self._submit(op, args, write=True)

    async def _read(self, op: Op, *args: Any) -> Any:
        return await self._submit(op, args, write=False)

    def _connect(self) -> sqlite3.Connection:
        return open_database(self._path, _setup, timeout=self._busy_timeout)

    def _work(self) -> None:
        conn: sqlite3.Connection | None = None
        opened: BaseException | None = None
        try:
            conn = self._connect()
        except (sqlite3.Error, OSError) as exc:
            opened = exc
        while True:
            first = self._jobs.get()
            if first is None:
                break
            jobs = [first]
            stop = False
            while len(jobs) < MAX_BATCH:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
            if conn is None:
                error = StoreUnavailable(f"cannot open sqlite sessions {self._path}: {opened}")
                for job in jobs:
                    job.error = error
                grants: list[str] = []
            else:
                grants = self._run_batch(conn, jobs)
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._deliver, jobs, grants)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                break
            if stop:
                break
        if conn is not None:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, jobs: list[_Job]) -> list[str]:
        writes = [job for job in jobs if job.write]
        grants: list[str] = []
        if writes:
            self._grants = []
            try:
                conn.execute("BEGIN IMMEDIATE")
                for job in writes:
                    job.result = job.op(conn, *job.args)
                conn.execute("COMMIT")
                grants = self._grants
            except Exception as exc:
                with contextlib.suppress(sqlite3.Error):
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                error = _unavailable(exc)
                for job in writes:
                    job.result, job.error = None, error
        for job in jobs:
            if not job.write:
                try:
                    job.result = job.op(conn, *job.args)
                except Exception as exc:
                    job.error = _unavailable(exc)
        return grants

    def _deliver(self, jobs: list[_Job], grants: list[str]) -> None:
        for job in jobs:
            if job.future.done():
                continue
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.result)
        for token in grants:
            waiter = self._waiting.get(token)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    # -- operations (worker thread, inside the batch's transaction for writes) ---------------

    def _handover(self, conn: sqlite3.Connection, user_id: str, now: float) -> str | None:
        """Give the free lock to the first waiter whose wait has not run out."""
        while True:
            row = conn.execute(
                "SELECT seq, token, owner, deadline FROM session_waiters "
                "WHERE user_id = ? ORDER BY seq LIMIT 1",
                (user_id,),
            ).fetchone()
            if row is None:
                return None
            seq, token, owner, deadline = row
            conn.execute("DELETE FROM session_waiters WHERE seq = ?", (seq,))
            if deadline > now:
                conn.execute(
                    "INSERT OR REPLACE INTO session_locks VALUES (?, ?, ?, ?)",
                    (user_id, token, owner, now + self._lock_ttl),
                )
                if owner == self._id:
                    self._grants.append(token)
                return str(token)

    @staticmethod
    def _blob(conn: sqlite3.Connection, user_id: str) -> bytes | None:
        row = conn.execute("SELECT blob FROM sessions WHERE user_id = ?", (user_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def _op_acquire(
        self, conn: sqlite3.Connection, user_id: str, token: str, wait: float
    ) -> tuple[bool, bytes | None]:
        now = time.time()
        row = conn.execute(
            "SELECT token, lease_until FROM session_locks WHERE user_id = ?", (user_id,)
        ).fetchone()
        if row is not None and row[0] == token:
            return True, self._blob(conn, user_id)
        if row is not None and row[1] <= now:  # its holder died: the lock is free
            conn.execute("DELETE FROM session_locks WHERE user_id = ?", (user_id,))
            row = None
        if row is None and self._handover(conn, user_id, now) is None:
            conn.execute(
                "INSERT INTO session_locks VALUES (?, ?, ?, ?)",
                (user_id, token, self._id, now + self._lock_ttl),
            )
            return True, self._blob(conn, user_id)
        conn.execute(
            "INSERT INTO session_waiters (user_id, token, owner, deadline) VALUES (?, ?, ?, ?)",
            (user_id, token, self._id, now + wait),
        )
        return False, None

    def _op_claim(
        self, conn: sqlite3.Connection, user_id: str, token: str
    ) -> tuple[bool, bytes | None]:
        """Take a lock that was handed to ``token`` (refreshing its lease), with the blob."""
        cur = conn.execute(
            "UPDATE session_locks SET lease_until = ? WHERE user_id = ? AND token = ?",
            (time.time() + self._lock_ttl, user_id, token),
        )
        if cur.rowcount:
            return True, self._blob(conn, user_id)
        return False, None

    def _op_cancel(
        self, conn: sqlite3.Connection, user_id: str, token: str
    ) -> tuple[bool, bytes | None]:
        """Leave the queue, unless the lock was handed over meanwhile: then take it."""
        got = self._op_claim(conn, user_id, token)
        if not got[0]:
            conn.execute("DELETE FROM session_waiters WHERE token = ?", (token,))
        return got

    def _op_abandon(self, conn: sqlite3.Connection, user_id: str, token: str) -> None:
        """Whatever ``token`` holds or waits for, give it up."""
        conn.execute("DELETE FROM session_waiters WHERE token = ?", (token,))
        self._op_release(conn, user_id, token)

    def _op_release(self, conn: sqlite3.Connection, user_id: str, token: str) -> bool:
        cur = conn.execute(
            "DELETE FROM session_locks WHERE user_id = ? AND token = ?", (user_id, token)
        )
        if not cur.rowcount:
            return False
        self._handover(conn, user_id, time.time())
        return True

    def _op_commit(
        self,
        conn: sqlite3.Connection,
        user_id: str,
        token: str,
        blob: bytes | None,
        expires_at: float,
        keep_until: float,
    ) -> bool:
        cur = conn.execute(
            "DELETE FROM session_locks WHERE user_id = ? AND token = ?", (user_id, token)
        )
        if not cur.rowcount:
            return False  # fenced out: nothing is written
        if blob is None:
            conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        else:
            conn.execute(_UPSERT, (user_id, blob, expires_at, keep_until))
        self._handover(conn, user_id, time.time())
        return True

    def _op_renew(self, conn: sqlite3.Connection, held: list[tuple[str, str]]) -> None:
        until = time.time() + self._lock_ttl
        conn.executemany(
            "UPDATE session_locks SET lease_until = ? WHERE user_id = ? AND token = ?",
            [(until, user_id, token) for user_id, token in held],
        )

    def _op_reap(self, conn: sqlite3.Connection) -> None:
        """Free the locks of dead holders and wake the waiters they kept waiting."""
        now = time.time()
        conn.execute("DELETE FROM session_waiters WHERE deadline <= ?", (now,))
        stale = conn.execute(
            "SELECT user_id FROM session_locks WHERE lease_until <= ?", (now,)
        ).fetchall()
        for (user_id,) in stale:
            conn.execute("DELETE FROM session_locks WHERE user_id = ?", (user_id,))
        orphaned = conn.execute(
            "SELECT DISTINCT user_id FROM session_waiters WHERE user_id NOT IN "
            "(SELECT user_id FROM session_locks)"
        ).fetchall()
        for (user_id,) in orphaned:
            self._handover(conn, user_id, now)

    def _op_owned(self, conn: sqlite3.Connection) -> list[tuple[str, str]]:
        return conn.execute(
            "SELECT user_id, token FROM session_locks WHERE owner = ?", (self._id,)
        ).fetchall()

    @staticmethod
    def _op_load(conn: sqlite3.Connection, user_id: str) -> bytes | None:
        return SqliteSessionStore._blob(conn, user_id)

    @staticmethod
    def _op_ping(conn: sqlite3.Connection) -> None:
        conn.execute("SELECT 1").fetchone()

    @staticmethod
    def _op_count(conn: sqlite3.Connection, now: float) -> int:
        row = conn.execute("SELECT count(*) FROM sessions WHERE expires_at > ?", (now,)).fetchone()
        return int(row[0])

    @staticmethod
    def _op_page(
        conn: sqlite3.Connection, now: float, cursor: str | None, limit: int
    ) -> list[tuple[str, bytes]]:
        rows = conn.execute(
            "SELECT user_id, blob FROM sessions WHERE user_id > ? AND expires_at > ? "
            "ORDER BY user_id LIMIT ?",
            (cursor or "", now, limit + 1),
        ).fetchall()
        return [(str(u), bytes(b)) for u, b in rows]

    @staticmethod
    def _op_purge(conn: sqlite3.Connection, now: float, limit: int) -> int:
        cur = conn.execute(
            "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions "
            "WHERE keep_until <= ? ORDER BY keep_until LIMIT ?)",
            (now, limit),
        )
        return int(cur.rowcount)

    # -- locking -----------------------------------------------------------------------------

    async def acquire(self, user_id: str, *, timeout: float) -> Lease:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            token = f"{self._id}.{secrets.token_hex(8)}"
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiting[token] = waiter  # before asking: a grant may come in the same batch
            try:
                got, blob = await self._write(
                    self._op_acquire, user_id, token, max(0.0, deadline - loop.time())
                )
                if got:
                    return self._lease(user_id, token, blob)
                self._ensure_poller()
                try:
                    async with asyncio.timeout_at(deadline):
                        await waiter
                except TimeoutError:
                    got, blob = await self._write(self._op_cancel, user_id, token)
                    if got:  # handed over just as the wait ran out
                        return self._lease(user_id, token, blob)
                    raise SessionBusy(
                        f"user {user_id!r} is busy: waited {timeout:g}s for the previous message"
                    ) from None
                got, blob = await self._write(self._op_claim, user_id, token)
                if got:
                    return self._lease(user_id, token, blob)
                # handed the lock but reaped before we claimed it: queue again
            except asyncio.CancelledError:
                # our operations still run, in order: undo whatever they did
                if self._thread is not None and not self._closed:
                    self._fire(self._op_abandon, user_id, token)
                raise
            finally:
                self._waiting.pop(token, None)

    def _lease(self, user_id: str, token: str, blob: bytes | None) -> Lease:
        held = _Held(user_id, token)
        self._held[token] = held
        if self._renew and (self._renewer is None or self._renewer.done()):
            self._renewer = asyncio.create_task(self._renew_loop())
        return Lease(user_id, token, blob, held)

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_loop())

    async def _poll_loop(self) -> None:
        """While this process has waiters: notice locks handed over by other processes."""
        last_reap = time.monotonic()
        while self._waiting:
            await asyncio.sleep(self._poll)
            try:
                if time.monotonic() - last_reap >= self._reap_every:
                    last_reap = time.monotonic()
                    await self._write(self._op_reap)
                owned = await self._read(self._op_owned)
            except StoreUnavailable:
                continue
            for user_id, token in owned:
                waiter = self._waiting.get(token)
                if waiter is not None:
                    if not waiter.done():
                        waiter.set_result(None)
                elif token not in self._held:  # handed to a waiter that is gone
                    self._fire(self._op_release, user_id, token)

    async def _renew_loop(self) -> None:
        """Extend the lock rows of turns still running; ends after a round with none."""
        while True:
            await asyncio.sleep(self._lock_ttl / 3)
            held = [(h.user_id, h.token) for h in self._held.values()]
            if not held:
                return
            with contextlib.suppress(StoreUnavailable):
                await self._write(self._op_renew, held)

    async def commit(
        self, lease: Lease, blob: bytes | None, *, expires_at: float, keep_until: float
    ) -> None:
        self._held.pop(lease.token, None)  # renewal stops here, whatever the outcome
        ok = await self._write(
            self._op_commit,
            lease.user_id,
            lease.token,
            blob,
            float(expires_at),
            float(max(keep_until, expires_at)),
        )
        if not ok:
            raise LockLost(f"the lock of {lease.user_id!r} is no longer held; nothing was saved")

    async def release(self, lease: Lease) -> None:
        self._held.pop(lease.token, None)
        await self._write(self._op_release, lease.user_id, lease.token)

    # -- reading and expiry ------------------------------------------------------------------

    async def load(self, user_id: str) -> bytes | None:
        blob: bytes | None = await self._read(self._op_load, user_id)
        return blob

    async def count_active(self, now: float) -> int:
        count: int = await self._read(self._op_count, float(now))
        return count

    async def page_active(self, now: float, cursor: str | None, limit: int) -> SessionPage:
        rows: list[tuple[str, bytes]] = await self._read(self._op_page, float(now), cursor, limit)
        more = len(rows) > limit
        items = rows[:limit]
        return SessionPage(items, items[-1][0] if more and items else None)

    async def purge_expired(self, now: float, limit: int) -> int:
        if limit <= 0:
            return 0
        done: int = await self._write(self._op_purge, float(now), limit)
        return done

    async def ping(self) -> None:
        await self._read(self._op_ping)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        tasks = [t for t in (self._poller, self._renewer) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._held.clear()
        if self._thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join)


def _setup(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")


def _unavailable(exc: BaseException) -> StoreUnavailable:
    if isinstance(exc, StoreUnavailable):
        return exc
    return StoreUnavailable(f"sqlite session store: {exc}")
