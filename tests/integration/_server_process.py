"""A real ``snapreport serve`` process for fault tests, and ways to stop its stores mid-turn.

``ServerProcess`` runs the command line of this checkout (``python -m snapreport serve``) on a
free loopback port with the given settings, and can be SIGKILLed. ``write_locked(path)`` holds
a SQLite file's write lock from the test, so a server writing to it waits (up to its busy
timeout) exactly where the test wants it to. ``until`` polls for a condition, with a bound.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.harness.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60.0


class ServerProcess:
    """One single-worker server process with sessions, orders and media under ``directory``."""

    def __init__(self, directory: Path, settings: Mapping[str, str], *, name: str) -> None:
        self.directory = directory
        self.settings = dict(settings)
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("SNAPREPORT_")}
        env.update(
            {
                "SNAPREPORT_DATA_DIR": str(self.directory),
                "SNAPREPORT_MEDIA__ROOT": str(self.directory / "media"),
                "SNAPREPORT_RATE_LIMIT_PER_MINUTE": "1000",
                "SNAPREPORT_LOG_LEVEL": "WARNING",
                **self.settings,
            }
        )
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
        log = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "snapreport", "serve", "--port", str(port)],
            env=env,
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.url = f"http://127.0.0.1:{port}"
        self._wait_ready()
        return self.url

    @property
    def log(self) -> Path:
        return self.directory / f"{self.name}.log"

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} was not ready in {STARTUP_SECONDS} s:\n{self.log.read_text()}"
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, whatever it was doing stays half done."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()


@contextmanager
def server(directory: Path, settings: Mapping[str, str], *, name: str) -> Iterator[ServerProcess]:
    process = ServerProcess(directory, settings, name=name)
    try:
        process.start()
        yield process
    finally:
        process.stop()


class WriteLock:
    """A SQLite file's write lock, held by a connection of the test until ``release``."""

    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._connection.execute("BEGIN IMMEDIATE")
        self._held = True

    def release(self) -> None:
        if self._held:
            self._connection.execute("ROLLBACK")
            self._held = False
        self._connection.close()


@contextmanager
def write_locked(path: Path) -> Iterator[WriteLock]:
    lock = WriteLock(path)
    try:
        yield lock
    finally:
        lock.release()


def query(path: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    """Rows of a read-only query on a SQLite file (WAL readers never wait for a writer)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


async def until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)
