"""Worker processes for the outbox tests: each runs ``_outbox_process`` with settings from its
environment, on a given orders database and fake WeCom API."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.harness.fake_wecom import (
    TEST_AES_KEY,
    TEST_AGENT_ID,
    TEST_CORP_ID,
    TEST_SECRET,
    TEST_TOKEN,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_SECONDS = 60.0
PUBLIC_URL = "https://snap.example.com"


def worker_env(tmp_path: Path, orders_url: str, wecom_url: str, **outbox: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPREPORT_")}
    env.update(
        {
            "SNAPREPORT_DATA_DIR": str(tmp_path / "data"),
            "SNAPREPORT_MEDIA__ROOT": str(tmp_path / "media"),
            "SNAPREPORT_ORDERS__URL": orders_url,
            "SNAPREPORT_PUBLIC_URL": PUBLIC_URL,
            "SNAPREPORT_WECOM__CORP_ID": TEST_CORP_ID,
            "SNAPREPORT_WECOM__AGENT_ID": TEST_AGENT_ID,
            "SNAPREPORT_WECOM__SECRET": TEST_SECRET,
            "SNAPREPORT_WECOM__TOKEN": TEST_TOKEN,
            "SNAPREPORT_WECOM__ENCODING_AES_KEY": TEST_AES_KEY,
            "SNAPREPORT_WECOM__API_BASE_URL": wecom_url,
            "SNAPREPORT_LOG_LEVEL": "WARNING",
        }
    )
    env.update({f"SNAPREPORT_OUTBOX__{k.upper()}": v for k, v in outbox.items()})
    return env


def spawn_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    """A worker process, starting (see ``wait_ready``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration._outbox_process"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def start_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    """A worker process, returned once it printed "ready" (fails loudly otherwise)."""
    return wait_ready(spawn_worker(env))


def wait_ready(process: subprocess.Popen[str]) -> subprocess.Popen[str]:
    """``process`` once it printed "ready"; killed, and an error, if it does not."""
    assert process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        readable, _, _ = select.select([process.stdout], [], [], 0.5)
        if readable and process.stdout.readline().strip() == "ready":
            return process
        if process.poll() is not None:
            raise RuntimeError(f"a worker process exited with {process.returncode}")
    process.kill()
    raise RuntimeError(f"a worker process was not ready within {READY_TIMEOUT_SECONDS} s")


@contextmanager
def workers(env: dict[str, str], count: int) -> Iterator[list[subprocess.Popen[str]]]:
    """``count`` worker processes, killed at the end."""
    started = [spawn_worker(env) for _ in range(count)]
    try:
        for process in started:
            wait_ready(process)
        yield started
    finally:
        for process in started:
            process.kill()
            process.wait(10)
