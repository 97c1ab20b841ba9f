"""Pytest plugin: a real, throwaway PostgreSQL for the tests.

``postgres_url`` (session scope) is an admin URL (``postgresql+asyncpg://...``): the server given
by the ``POSTGRES_URL`` environment variable, or one started from the installed binaries in a
temporary directory on an ephemeral loopback port, with durability switched off for speed.
``postgres_database`` (function scope) is the URL of a fresh, empty database, dropped after the
test, so tests never see each other's rows.

``start_postgres()`` starts a separate server a test owns (e.g. to stop it and see what happens
when the store goes away); ``fresh_database(admin_url)`` is the context manager behind
``postgres_database``.

When no PostgreSQL can be found or started, the tests fail loudly; they are never skipped.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

INSTALL_HINT = (
    "PostgreSQL is required for these tests: install the postgresql package "
    "(apt-get install postgresql) or set POSTGRES_URL"
)
SERVICE_USER = "postgres"
_START_ATTEMPTS = 3


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be found or started."""


def _find_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    # Debian installs the server binaries outside PATH, one directory per major version.
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return candidates[-1]
    raise PostgresUnavailable(f"{INSTALL_HINT} ({name!r} not found)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ensure_service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", SERVICE_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


@dataclass
class PostgresServer:
    """A PostgreSQL server in its own temporary directory, listening on 127.0.0.1:``port``."""

    root: Path
    port: int
    pg_ctl: str
    run_as: str | None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def admin_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _command(self, *argv: str) -> list[str]:
        if self.run_as is None:
            return list(argv)
        if shutil.which("runuser"):
            return ["runuser", "-u", self.run_as, "--", *argv]
        return ["su", self.run_as, "-s", "/bin/sh", "-c", shlex.join(argv)]

    def _run(self, *argv: str, timeout: float = 120.0) -> None:
        result = subprocess.run(
            self._command(*argv), capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            raise PostgresUnavailable(
                f"{INSTALL_HINT}\n`{' '.join(argv)}` exited with {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}\n{log}"
            )

    def start(self) -> None:
        options = (
            f"-k {self.root} -h 127.0.0.1 -p {self.port} "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off "
            "-c max_connections=200"
        )
        self._run(
            self.pg_ctl, "-D", str(self.data_dir), "-l", str(self.log_file),
            "-w", "-t", "60", "-o", options, "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; it keeps its files, so ``start`` brings it back with its data.

        ``mode="immediate"`` is quicker but loses recent commits (durability is off).
        """
        if (self.data_dir / "postmaster.pid").exists():
            self._run(self.pg_ctl, "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(PostgresUnavailable):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """Initialise and start a throwaway server; the caller must ``destroy()`` it."""
    initdb = _find_binary("initdb")
    pg_ctl = _find_binary("pg_ctl")
    _find_binary("postgres")
    # Outside pytest's private temp tree: the server user must be able to reach the directory,
    # and the unix socket path must stay short.
    root = Path(tempfile.mkdtemp(prefix="snapreport-pg-", dir="/tmp"))
    run_as: str | None = None
    if os.geteuid() == 0:
        # initdb refuses to run as root.
        user = _ensure_service_user()
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = user.pw_name
    server = PostgresServer(root=root, port=0, pg_ctl=pg_ctl, run_as=run_as)
    try:
        server._run(
            initdb, "-D", str(server.data_dir), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        last_error: PostgresUnavailable | None = None
        for _ in range(_START_ATTEMPTS):
            # Another process may take the port between our probe and the server's bind.
            server.port = _free_port()
            try:
                server.start()
            except PostgresUnavailable as exc:
                last_error = exc
                continue
            return server
        assert last_error is not None
        raise last_error
    except BaseException:
        server.destroy()
        raise


def asyncpg_dsn(url: str) -> str:
    """The plain libpq-style DSN asyncpg accepts, from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str) -> AsyncIterator[str]:
    """Create an empty database on the server of ``admin_url``; drop it on exit."""
    name = f"test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(asyncpg_dsn(admin_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Admin URL of the PostgreSQL the tests use (``POSTGRES_URL``, or a throwaway server)."""
    given = os.environ.get("POSTGRES_URL")
    if given:
        url = make_url(given)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+asyncpg")
        yield url.render_as_string(hide_password=False)
        return
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"{INSTALL_HINT} ({exc})", pytrace=False)
    try:
        yield server.admin_url
    finally:
        server.destroy()


@pytest.fixture
async def postgres_database(postgres_url: str) -> AsyncIterator[str]:
    """URL of a fresh, empty database on the test server, dropped after the test."""
    async with fresh_database(postgres_url) as url:
        yield url
