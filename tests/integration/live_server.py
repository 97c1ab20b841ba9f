"""Run an ASGI app under uvicorn in a background thread, on an ephemeral loopback port.

``with live_server(app) as url:`` yields ``http://127.0.0.1:<port>`` once the app has started
(lifespan included) and stops it on exit. The socket is bound before the thread starts, so the
port is known up front and no other process can take it in between.

``local_settings(tmp_path, **overrides)`` gives the embedded configuration such an app usually
runs on in tests: memory sessions, SQLite orders and local media under ``tmp_path``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from snapreport.config import Settings

STARTUP_TIMEOUT_SECONDS = 30.0
SHUTDOWN_TIMEOUT_SECONDS = 15.0


@contextmanager
def live_server(app: Any, *, log_level: str = "warning") -> Iterator[str]:
    """Serve ``app`` until the block ends; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=False)
    server = uvicorn.Server(config)  # leaves signals alone off the main thread
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit included: uvicorn exits on startup errors
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the app failed to start: {failure or 'see its log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start within {STARTUP_TIMEOUT_SECONDS} s")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT_SECONDS)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("the app did not stop in time")


class IsolatedSettings(Settings):
    """Settings from the given values only: the environment and any .env file cannot leak in."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def local_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Embedded defaults under ``tmp_path``: memory sessions, SQLite orders, local media."""
    values: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "session": {"backend": "memory"},
        "media": {"backend": "local", "root": str(tmp_path / "media")},
        "orders": {"url": f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}"},
        **overrides,
    }
    return IsolatedSettings.model_validate(values)
