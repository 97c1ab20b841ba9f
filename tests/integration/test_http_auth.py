"""Bearer tokens on every endpoint family, and the rules for running open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from snapreport.channels.http.auth import Tokens, check_binding, is_loopback
from snapreport.errors import ConfigurationError, Unauthorized
from tests.integration.http_kit import (
    ADMIN_TOKEN,
    API_TOKEN,
    Running,
    bearer,
    make_settings,
    running,
    text_message,
)

MESSAGE = ("POST", "/api/v1/messages")
USER = ("GET", "/api/v1/users/alice/orders")
USER_SESSION = ("GET", "/api/v1/users/alice/session")
ADMIN = ("GET", "/api/v1/sessions")
ADMIN_ORDERS = ("GET", "/api/v1/orders")


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Running]:
    settings = make_settings(tmp_path, api_token=API_TOKEN, admin_token=ADMIN_TOKEN)
    async with running(settings) as r:
        yield r


async def _call(r: Running, endpoint: tuple[str, str], headers: dict[str, str]) -> int:
    method, url = endpoint
    body = text_message("alice", "帮助") if method == "POST" else None
    response = await r.client.request(method, url, json=body, headers=headers)
    if response.status_code == 401:
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    return response.status_code


@pytest.mark.parametrize("endpoint", [MESSAGE, USER, USER_SESSION, ADMIN, ADMIN_ORDERS])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {API_TOKEN}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {API_TOKEN}x"},
    ],
    ids=["missing", "wrong", "basic", "empty", "longer"],
)
async def test_missing_or_wrong_tokens_are_401(
    guarded: Running, endpoint: tuple[str, str], headers: dict[str, str]
) -> None:
    assert await _call(guarded, endpoint, headers) == 401


@pytest.mark.parametrize(
    ("endpoint", "api", "admin"),
    [
        (MESSAGE, 200, 200),
        (USER, 200, 200),
        (USER_SESSION, 200, 200),
        (ADMIN, 401, 200),
        (ADMIN_ORDERS, 401, 200),
    ],
)
async def test_each_token_opens_its_endpoints(
    guarded: Running, endpoint: tuple[str, str], api: int, admin: int
) -> None:
    assert await _call(guarded, endpoint, bearer(API_TOKEN)) == api
    assert await _call(guarded, endpoint, bearer(ADMIN_TOKEN)) == admin


async def test_a_refused_message_changes_nothing(guarded: Running) -> None:
    response = await guarded.client.post("/api/v1/messages", json=text_message("alice", "帮助"))
    assert response.status_code == 401
    assert await guarded.ctx.engine.peek("alice") is None


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/"])
async def test_probes_docs_and_page_need_no_token(guarded: Running, path: str) -> None:
    assert (await guarded.client.get(path)).status_code == 200


async def test_with_only_an_api_token_it_also_guards_admin(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, api_token=API_TOKEN)) as r:
        assert await _call(r, ADMIN, {}) == 401
        assert await _call(r, ADMIN, bearer(API_TOKEN)) == 200


async def test_without_tokens_everything_is_open(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as r:
        assert await _call(r, MESSAGE, {}) == 200
        assert await _call(r, ADMIN, {}) == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.org", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_open_on_loopback_refused_elsewhere(tmp_path: Path) -> None:
    bare = make_settings(tmp_path)
    assert check_binding(bare, "127.0.0.1") is True
    with pytest.raises(ConfigurationError, match="SNAPREPORT_API_TOKEN and SNAPREPORT_ADMIN"):
        check_binding(bare, "0.0.0.0")
    api_only = make_settings(tmp_path, api_token=API_TOKEN)
    with pytest.raises(ConfigurationError, match="SNAPREPORT_ADMIN_TOKEN"):
        check_binding(api_only, "0.0.0.0")
    both = make_settings(tmp_path, api_token=API_TOKEN, admin_token=ADMIN_TOKEN)
    assert check_binding(both, "0.0.0.0") is False
    assert check_binding(both, "127.0.0.1") is False


def test_tokens_compare_whole_values(tmp_path: Path) -> None:
    tokens = Tokens(b"abc", b"")
    tokens.check("api", "Bearer abc")
    tokens.check("admin", "bearer abc")
    for wrong in ("Bearer ab", "Bearer abcd", "Bearer ABC", "abc"):
        with pytest.raises(Unauthorized):
            tokens.check("api", wrong)
    assert Tokens.from_settings(make_settings(tmp_path, api_token=SecretStr("x"))).api == b"x"
