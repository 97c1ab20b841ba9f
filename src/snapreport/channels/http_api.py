"""The HTTP API channel; see ``snapreport.channels.http`` for its parts."""

from __future__ import annotations

from snapreport.channels.http import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]
