"""Pytest plugin: a real redis-server (or valkey-server) for the tests.

- ``redis_url`` (session scope): ``REDIS_URL`` when set, else a redis-server started from PATH
  on a free loopback port in a temporary directory (``--save "" --appendonly no``). Neither
  possible: the run fails, saying how to install one. Tests share it, so each test uses its own
  key prefix (``redis_prefix``) instead of flushing.
- ``redis_server`` (function scope): a server of the test's own, for destructive tests; it can
  be stopped, killed and started again on the same port (``RedisServer``). Optional AOF
  persistence (``appendonly=True``) keeps data across a restart.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

INSTALL_ADVICE = (
    "the Redis tests need a redis-server: install it (Debian/Ubuntu: `apt-get install "
    "redis-server`; or valkey-server) so that it is on PATH, or set REDIS_URL=redis://host:port/0 "
    "to use a running server"
)


def find_redis_binary() -> str | None:
    for name in ("redis-server", "valkey-server"):
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server process on 127.0.0.1 that a test can stop and start again."""

    def __init__(self, binary: str, directory: Path, *, appendonly: bool = False) -> None:
        self.binary = binary
        self.directory = directory
        self.appendonly = appendonly
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _args(self) -> list[str]:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--logfile", str(self.directory / "redis.log"),
            "--maxclients", "10000",
        ]  # fmt: skip
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        return args

    def start(self, timeout: float = 10.0) -> None:
        """Start it (on a new free port the first time, on the same port after a stop)."""
        if self.running:
            return
        tries = 5 if self.port == 0 else 1
        for _ in range(tries):
            if tries > 1:
                self.port = free_port()
            self.process = subprocess.Popen(
                self._args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break  # port taken by someone else in the meantime, most likely
                if _ping(self.port):
                    return
                time.sleep(0.02)
            self._terminate(kill=True)
        log = self.directory / "redis.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{tail}")

    def _terminate(self, *, kill: bool) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        """Shut it down (SIGTERM); with ``appendonly`` its data comes back at ``start``."""
        self._terminate(kill=False)

    def kill(self) -> None:
        self._terminate(kill=True)


def _require_binary() -> str:
    binary = find_redis_binary()
    if binary is None:
        message = f"no redis-server on PATH and REDIS_URL is not set: {INSTALL_ADVICE}"
        pytest.fail(message, pytrace=False)
    return binary


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis every test may use, under its own key prefix (see ``redis_prefix``)."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = RedisServer(_require_binary(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses, so tests share one server without flushing it."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (AOF on), which the test may stop and start."""
    server = RedisServer(_require_binary(), tmp_path, appendonly=True)
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.kill()
