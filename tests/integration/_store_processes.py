"""Start ``_store_worker`` processes and talk to them line by line (shared by the store tests)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """One worker process; its stdout lines arrive on a queue read by a thread."""

    def __init__(self, job: str, *args: str, log: Path) -> None:
        self.log = log
        self._stderr = log.open("wb")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH", "")]
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration._store_worker", job, *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, wanted: str, timeout: float = 30.0) -> str:
        """The next line, which must start with ``wanted``."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"worker said nothing in {timeout}s; {self.stderr()}") from None
        if line is None or not line.startswith(wanted):
            raise AssertionError(f"worker said {line!r}, not {wanted!r}; {self.stderr()}")
        return line

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def stderr(self) -> str:
        self._stderr.flush()
        return "stderr: " + self.log.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._stderr.close()

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._stderr.close()
        return code
