"""The vendored Chart.js is the file its README names: the version and checksum there match
the bytes served, and its licence is beside it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import snapreport

VENDOR = Path(snapreport.__file__).parent / "channels" / "web" / "static" / "vendor" / "chartjs"


def test_the_readme_names_the_vendored_build() -> None:
    readme = (VENDOR / "README.md").read_text(encoding="utf-8")
    build = (VENDOR / "chart.umd.min.js").read_bytes()
    [checksum] = re.findall(r"sha256 `([0-9a-f]{64})`", readme)
    assert hashlib.sha256(build).hexdigest() == checksum
    [version] = re.findall(r"Chart\.js \*\*(\d+\.\d+\.\d+)\*\*", readme)
    assert build.startswith(b"/*!\n * Chart.js v" + version.encode() + b"\n")
    assert "npm pack chart.js@4" in readme
    assert "MIT License" in (VENDOR / "LICENSE.md").read_text(encoding="utf-8")
