"""The PostgreSQL test harness fails loudly, with install advice, when it finds no server."""

from __future__ import annotations

import glob
import shutil

import pytest

from tests.harness import postgres_server
from tests.harness.postgres_server import INSTALL_HINT, PostgresUnavailable, asyncpg_dsn


def test_missing_binaries_fail_with_install_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(glob, "glob", lambda pattern: [])

    with pytest.raises(PostgresUnavailable) as caught:
        postgres_server.start_postgres()

    assert INSTALL_HINT in str(caught.value)
    assert "apt-get install postgresql" in str(caught.value)
    assert "POSTGRES_URL" in str(caught.value)


def test_asyncpg_dsn_keeps_credentials_and_drops_the_driver() -> None:
    dsn = asyncpg_dsn("postgresql+asyncpg://snap:pw@127.0.0.1:5433/orders")
    assert dsn == "postgresql://snap:pw@127.0.0.1:5433/orders"
