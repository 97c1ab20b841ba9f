"""The example scripts run and print what they say they show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_session_walkthrough_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "session_walkthrough.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "lost: state 'waiting_confirm'" in done.stdout
    assert "['message 1', 'message 2', 'message 3']" in done.stdout
