"""Console API test kit: an app on the dispatch rules with tokens, filing orders through
the admin API, acting as a user through the service token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.harness.clock import FakeClock
from tests.integration.dispatch_kit import RULES
from tests.integration.http_kit import (
    ADMIN_TOKEN,
    API_TOKEN,
    Running,
    bearer,
    make_settings,
    running,
)

ADMIN = bearer(ADMIN_TOKEN)


def as_user(user_id: str) -> dict[str, str]:
    """A trusted backend acting for ``user_id``."""
    return {**bearer(API_TOKEN), "X-Acting-User": user_id}


def console_settings(tmp_path: Path, orders_url: str, **overrides: Any) -> Any:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES, encoding="utf-8")
    return make_settings(
        tmp_path,
        orders={"url": orders_url},
        dispatch={"rules_file": rules},
        api_token=API_TOKEN,
        admin_token=ADMIN_TOKEN,
        **overrides,
    )


@asynccontextmanager
async def console_app(
    tmp_path: Path, orders_url: str, clock: FakeClock, **overrides: Any
) -> AsyncIterator[Running]:
    async with running(console_settings(tmp_path, orders_url, **overrides), clock=clock) as r:
        yield r


async def file_order(
    app: Running,
    location: str = "A区北门",
    alarm_type: str = "消防通道堵塞",
    description: str = "堵了",
    **extra: Any,
) -> dict[str, Any]:
    answer = await app.client.post(
        "/api/v1/orders",
        json={"alarm_type": alarm_type, "location": location, "description": description, **extra},
        headers=ADMIN,
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def act(app: Running, user: str, number: str, action: str, **body: Any) -> dict[str, Any]:
    answer = await app.client.post(
        f"/api/v1/orders/{number}/{action}", json=body, headers=as_user(user)
    )
    assert answer.status_code in (200, 201), answer.text
    result: dict[str, Any] = answer.json()
    return result
