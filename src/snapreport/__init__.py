"""snapreport: snap a photo, file an alarm and a work order, close it with a photo."""

from __future__ import annotations

__version__ = "0.1.0"
