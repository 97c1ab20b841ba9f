"""The HTTP API: FastAPI app factory, routes, auth, errors, idempotency and rate limits."""

from __future__ import annotations

from snapreport.channels.http.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]
