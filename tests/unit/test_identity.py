"""Browser sessions, sign-in links, the OAuth ``state`` and ``next``: on the memory store with a
manual clock (the SQLite and Redis stores are covered through the HTTP tests)."""

from __future__ import annotations

import pytest

from snapreport.errors import SignInLinkInvalid, SignInStateInvalid
from snapreport.identity.links import SignInLinks
from snapreport.identity.redirects import safe_next
from snapreport.identity.sessions import BrowserSessions
from snapreport.identity.wecom_oauth import OAuthApp, WeComSignIn, signing_key
from snapreport.kv.memory import MemoryKeyValueStore
from tests.harness.clock import FakeClock

HOUR = 3600.0
APP = OAuthApp("ww-corp", "1000002", "https://open.weixin.qq.com")


def sessions(clock: FakeClock, kv: MemoryKeyValueStore | None = None) -> BrowserSessions:
    return BrowserSessions(
        kv or MemoryKeyValueStore(clock=clock), ttl_seconds=12 * HOUR, clock=clock
    )


async def test_a_session_slides_with_use_and_expires_without(clock: FakeClock) -> None:
    store = sessions(clock)
    opened = await store.open("lisi")
    for _ in range(3):  # 33 hours in all, never 12 idle
        clock.advance(11 * HOUR)
        found = await store.find(opened.id)
        assert found is not None
        assert found.user_id == "lisi"
        assert found.renewed
    clock.advance(12 * HOUR + 1)
    assert await store.find(opened.id) is None


async def test_a_closed_session_is_gone_and_unknown_ids_find_nothing(clock: FakeClock) -> None:
    store = sessions(clock)
    opened = await store.open("lisi")
    await store.close(opened.id)
    assert await store.find(opened.id) is None
    assert await store.find("x" * 43) is None
    assert await store.find("x" * 1000) is None


async def test_a_renewal_racing_a_logout_does_not_bring_the_session_back(
    clock: FakeClock,
) -> None:
    """The renewal reads the record, the logout deletes it, then the renewal writes it back:
    the logout's marker makes the renewal take its write back."""
    kv = MemoryKeyValueStore(clock=clock)
    store = sessions(clock, kv)
    opened = await store.open("lisi")
    clock.advance(HOUR)  # so the next find renews

    class LogoutAfterRead(MemoryKeyValueStore):
        async def get(self, key: str) -> bytes | None:
            value = await kv.get(key)
            if key.startswith("identity:session:") and not key.endswith(":closed"):
                await store.close(opened.id)  # the logout lands between read and write
            return value

        async def set(self, key: str, value: bytes, *, ttl_seconds: float) -> None:
            await kv.set(key, value, ttl_seconds=ttl_seconds)

        async def delete(self, key: str) -> None:
            await kv.delete(key)

    racing = BrowserSessions(LogoutAfterRead(clock=clock), ttl_seconds=12 * HOUR, clock=clock)
    assert await racing.find(opened.id) is None
    assert await store.find(opened.id) is None


def test_csrf_tokens_compare_exactly() -> None:
    from snapreport.identity.sessions import BrowserSession

    session = BrowserSession("id", "lisi", "token-1", 0.0)
    assert session.csrf_matches("token-1")
    assert not session.csrf_matches("token-2")
    assert not session.csrf_matches("")
    assert not session.csrf_matches(None)


async def test_a_link_works_once(clock: FakeClock) -> None:
    links = SignInLinks(MemoryKeyValueStore(clock=clock), ttl_seconds=300, public_url="https://x")
    link = await links.issue("lisi")
    assert link.startswith("https://x/auth/link/")
    token = link.rsplit("/", 1)[1]
    assert await links.redeem(token) == "lisi"
    with pytest.raises(SignInLinkInvalid, match="already used"):
        await links.redeem(token)


async def test_a_link_expires_after_five_minutes(clock: FakeClock) -> None:
    links = SignInLinks(MemoryKeyValueStore(clock=clock), ttl_seconds=300, public_url="")
    token = (await links.issue("lisi")).rsplit("/", 1)[1]
    clock.advance(301)
    with pytest.raises(SignInLinkInvalid, match="unknown or expired"):
        await links.redeem(token)
    with pytest.raises(SignInLinkInvalid, match="unknown or expired"):
        await links.redeem("never-issued-0123456789")


def oauth(clock: FakeClock, kv: MemoryKeyValueStore, key: bytes = b"k") -> WeComSignIn:
    return WeComSignIn(APP, key=key, kv=kv, clock=clock)


async def _state(signin: WeComSignIn, next_path: str | None = "/console") -> str:
    from urllib.parse import parse_qs, urlsplit

    url = await signin.authorize_url(base_url="https://snap.example.com", next_path=next_path)
    return parse_qs(urlsplit(url).query)["state"][0]


async def test_the_state_is_hex_within_wecom_limits_and_works_once(clock: FakeClock) -> None:
    signin = oauth(clock, MemoryKeyValueStore(clock=clock))
    state = await _state(signin)
    assert len(state) <= 128
    assert state.isalnum()
    assert await signin.check_state(state) == "/console"
    with pytest.raises(SignInStateInvalid, match="already used"):
        await signin.check_state(state)


async def test_a_forged_or_foreign_state_is_refused(clock: FakeClock) -> None:
    kv = MemoryKeyValueStore(clock=clock)
    state = await _state(oauth(clock, kv, key=b"theirs"))
    with pytest.raises(SignInStateInvalid, match="not ours"):
        await oauth(clock, kv, key=b"ours").check_state(state)
    flipped = state[:-1] + ("0" if state[-1] != "0" else "1")
    with pytest.raises(SignInStateInvalid, match="not ours"):
        await oauth(clock, kv, key=b"theirs").check_state(flipped)
    for junk in ("", "abc", "z" * len(state), state.upper()):
        with pytest.raises(SignInStateInvalid):
            await oauth(clock, kv, key=b"theirs").check_state(junk)


async def test_an_expired_state_is_refused(clock: FakeClock) -> None:
    signin = oauth(clock, MemoryKeyValueStore(clock=clock))
    state = await _state(signin)
    clock.advance(601)
    with pytest.raises(SignInStateInvalid, match="too long"):
        await signin.check_state(state)


def test_the_signing_key_is_the_same_in_every_worker_and_never_random() -> None:
    assert signing_key("", "app-secret") == signing_key("", "app-secret")
    assert signing_key("", "app-secret") != signing_key("", "other-secret")
    assert signing_key("configured", "app-secret") == b"configured"


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        ("/console", "/console"),
        ("/console/orders/WO-1?x=1#y", "/console/orders/WO-1?x=1#y"),
        (None, "/"),
        ("", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/a\\b", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("console", "/"),
        ("/\r\nSet-Cookie: x=1", "/"),
        ("/\t/evil.example", "/"),
        ("/" + "a" * 600, "/"),
    ],
)
def test_next_is_only_a_path_of_ours(candidate: str | None, expected: str) -> None:
    assert safe_next(candidate) == expected


async def test_revoking_a_user_ends_their_sessions_and_not_the_next_ones(clock: FakeClock) -> None:
    store = sessions(clock)
    first, second = await store.open("lisi"), await store.open("lisi")
    other = await store.open("wangwu")
    clock.advance(1)
    await store.revoke_user("lisi")
    assert await store.find(first.id) is None
    assert await store.find(second.id) is None
    assert await store.find(other.id) is not None
    clock.advance(1)
    later = await store.open("lisi")
    assert await store.find(later.id) is not None
