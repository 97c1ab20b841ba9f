"""``ScriptLink``: Redis calls sent on redis-py's own connections, and the scripts they run.

Shared by the Redis session store (its two scripts per turn) and the Redis key-value store.

redis-py's client wraps every command in machinery a script call does not need: a retry
wrapper and its closures, observability hooks, an async lock around the pool, and an
``asyncio.wait_for`` (a new task) around every write when a socket timeout is set. Measured on a
locked turn (two script calls), that is about 20 µs of the client's time, more than the two
scripts cost the server. ``ScriptLink`` keeps what matters and drops the rest: connections are
made by the pool's own connection class from the pool's own settings (host, port or unix socket,
TLS, password, database, protocol), replies are parsed by redis-py, and one ``asyncio.timeout``
bounds the whole round trip instead of a task per write. Commands are packed by ``pack``, a
plain RESP array of bulk strings: the same bytes redis-py writes, at 40 % of its cost.

Connections are kept in a free list (last in, first out) and reused. A connection that failed
or was cancelled mid-call has already been disconnected by redis-py (its send and read
disconnect on any error or cancellation), so it goes back too and reconnects on its next use,
as does one the server closed while it sat in the list (checked before each use, as redis-py's
pool does); an error reply (``ResponseError``, such as NOSCRIPT) leaves it clean. There are no
retries: a script whose reply was lost may have run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = bytes | str | int | float
Call = Callable[..., Awaitable[Any]]

DEFAULT_SOCKET_TIMEOUT_SECONDS: Final = 5.0
DEFAULT_CONNECT_TIMEOUT_SECONDS: Final = 1.0
DEFAULT_MAX_CONNECTIONS: Final = 1024


def connect(
    url: str,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT_SECONDS,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
) -> aioredis.Redis:
    """A client on a new plain connection pool; closing the client closes the pool.

    No automatic retries: a script or an INCR whose reply was lost may have run, and running it
    twice is not the same as once; a failure surfaces to the adapter, which converts it.
    """
    pool = ConnectionPool.from_url(
        url,
        max_connections=max_connections,
        decode_responses=False,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 0),
    )
    client = aioredis.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True
    return client


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and its SHA1, for EVALSHA (see ``run_script``)."""

    source: str
    sha: bytes  # pre-encoded: sent as it is


def script(source: str) -> Script:
    return Script(source, hashlib.sha1(source.encode()).hexdigest().encode())  # noqa: S324


def pack(*args: Arg) -> bytes:
    """A command as a RESP array of bulk strings (text as UTF-8, numbers as their repr)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if type(arg) is not bytes:
            if isinstance(arg, str):
                arg = arg.encode()
            elif isinstance(arg, int | float) and not isinstance(arg, bool):
                arg = repr(arg).encode()
            else:
                raise DataError(f"cannot send {type(arg).__name__} to redis: {arg!r}")
        parts += (b"$%d\r\n" % len(arg), arg, b"\r\n")
    return b"".join(parts)


class ScriptLink:
    """Round trips on up to ``max_connections`` connections made like ``pool``'s own."""

    def __init__(self, pool: ConnectionPool) -> None:
        kwargs = dict(pool.connection_kwargs)
        # the round trip's one timeout replaces the per-write and per-read ones
        self._timeout: float | None = kwargs.pop("socket_timeout", None)
        self._kwargs = kwargs
        self._class = pool.connection_class
        self._max = pool.max_connections
        self._free: list[AbstractConnection] = []
        self._made = 0

    @staticmethod
    def supports(pool: object) -> TypeGuard[ConnectionPool]:
        """Only a plain pool: a subclass (Sentinel, blocking) keeps redis-py's own path."""
        return type(pool) is ConnectionPool

    def _connection(self) -> AbstractConnection:
        if self._free:
            return self._free.pop()
        if self._made >= self._max:
            raise RedisConnectionError("Too many connections")
        self._made += 1
        connection: AbstractConnection = self._class(**self._kwargs)
        return connection

    async def call(self, *args: Arg) -> Any:
        """Send one command and return its reply; an error reply raises its ResponseError."""
        command = pack(*args)
        connection = self._connection()
        try:
            async with asyncio.timeout(self._timeout):
                if connection.is_connected and await connection.can_read():
                    # closed by the server while it sat here (a restart): start afresh
                    await connection.disconnect(nowait=True)
                await connection.send_packed_command(command, check_health=False)
                return await connection.read_response()
        except TimeoutError:  # asyncio.timeout's: redis-py raises its own classes
            raise RedisTimeoutError(f"no reply from redis within {self._timeout}s") from None
        finally:
            self._free.append(connection)

    async def aclose(self) -> None:
        free, self._free = self._free, []
        for connection in free:
            with contextlib.suppress(RedisError, OSError):
                await connection.disconnect()


def link_or_client(client: Any) -> tuple[ScriptLink | None, Call]:
    """A ``ScriptLink`` on ``client``'s pool and its ``call``, or (None, the client's own
    ``execute_command``) for a pool the link does not take."""
    pool = getattr(client, "connection_pool", None)
    if ScriptLink.supports(pool):
        link = ScriptLink(pool)
        return link, link.call
    execute: Call = client.execute_command
    return None, execute


async def run_script(call: Call, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
    """EVALSHA ``script``; EVAL it (which caches it) if the server does not know it yet."""
    numkeys = len(keys)
    try:
        return await call("EVALSHA", script.sha, numkeys, *keys, *args)
    except NoScriptError:  # a restarted or flushed server costs one EVAL
        return await call("EVAL", script.source, numkeys, *keys, *args)
