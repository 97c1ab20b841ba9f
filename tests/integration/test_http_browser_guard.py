"""Security headers on the page and the API, and the Host allow-list of an open service."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from pydantic import ValidationError

from snapreport.channels.http.app import STATIC_DIR
from tests.integration.http_kit import API_TOKEN, bearer, make_settings, running


def _directives(policy: str) -> dict[str, list[str]]:
    parts = (p.split() for p in policy.split(";") if p.strip())
    return {words[0]: words[1:] for words in parts}


async def test_the_page_and_its_files_carry_a_policy_without_inline_script(
    tmp_path: Path,
) -> None:
    async with running(make_settings(tmp_path)) as r:
        answers = [await r.client.get(p) for p in ("/", "/static/app.js", "/static/app.css")]
    for answer in answers:
        assert answer.status_code == 200
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        policy = _directives(answer.headers["content-security-policy"])
        assert policy["default-src"] == ["'none'"]
        assert policy["script-src"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert not any("unsafe" in v for values in policy.values() for v in values)


async def test_api_answers_carry_the_headers_too(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as r:
        answers = [await r.client.get("/healthz"), await r.client.get("/api/v1/orders/none")]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        policy = _directives(answer.headers["content-security-policy"])
        assert policy == {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}


class _InlineScript(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("<script> without src")
        self.found += [f"{tag} {name}=" for name in names if name.startswith("on")]
        self.found += [f"{tag} {name}=" for name, v in attrs if (v or "").startswith("javascript:")]


def test_the_page_has_no_inline_script_or_handler() -> None:
    parser = _InlineScript()
    parser.feed((STATIC_DIR / "index.html").read_text(encoding="utf-8"))
    assert parser.found == []


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "LOCALHOST:1", "127.0.0.1:8000", "[::1]:8000", "[::1]"]
)
async def test_open_service_answers_loopback_names(tmp_path: Path, host: str) -> None:
    async with running(make_settings(tmp_path)) as r:
        answer = await r.client.get("/api/v1/sessions", headers={"Host": host})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    "host", ["rebind.example", "rebind.example:8000", "localhost.rebind.example", "127.0.0.2", ""]
)
async def test_open_service_refuses_other_hosts(tmp_path: Path, host: str) -> None:
    async with running(make_settings(tmp_path)) as r:
        page = await r.client.get("/", headers={"Host": host})
        api = await r.client.get("/api/v1/sessions", headers={"Host": host})
    for answer in (page, api):
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "host_not_allowed"
        assert "SNAPREPORT_ALLOWED_HOSTS" in answer.json()["error"]["message"]
        assert answer.headers["x-request-id"]


async def test_the_allow_list_is_a_setting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, allowed_hosts=["Snap.Internal", "[::1]"])
    async with running(settings) as r:
        named = await r.client.get("/healthz", headers={"Host": "snap.internal:8080"})
        loopback = await r.client.get("/healthz", headers={"Host": "localhost"})
    assert named.status_code == 200
    assert loopback.status_code == 400


async def test_with_tokens_any_host_is_answered(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, api_token=API_TOKEN)) as r:
        answer = await r.client.get(
            "/api/v1/sessions", headers={"Host": "snap.example.com", **bearer(API_TOKEN)}
        )
    assert answer.status_code == 200


@pytest.mark.parametrize("bad", ["http://snap.example", "snap.example:8000", "::1", ""])
def test_a_bad_allowed_host_is_refused_with_the_fix(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValidationError, match=r"SNAPREPORT_ALLOWED_HOSTS.*without scheme or port"):
        make_settings(tmp_path, allowed_hosts=["localhost", bad])
