"""Webhook targets and signatures: which addresses are refused, a name that resolves
differently at send time or when the client connects, the short-lived lookup cache, and our
signatures against the reference library's."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from snapreport.errors import WebhookUrlRefused
from snapreport.webhooks.sender import Outcome, Poster, build_session
from snapreport.webhooks.signing import new_secret, signature, signature_header
from snapreport.webhooks.targets import CachedResolver, TargetCheck, refusal
from tests.harness.clock import FakeClock


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("::ffff:10.0.0.1", "private"),
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
    ],
)
def test_addresses(address: str, why: str | None) -> None:
    assert refusal(ipaddress.ip_address(address)) == why


class Flipping:
    """A resolver whose answer changes from one lookup to the next (DNS rebinding)."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.lookups = 0

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@asynccontextmanager
async def local_server() -> AsyncIterator[tuple[int, list[web.Request]]]:
    """An HTTP server on 127.0.0.1 answering 204, and the requests it got."""
    seen: list[web.Request] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner.addresses[0][1], seen
    finally:
        await runner.cleanup()


async def post(targets: TargetCheck, url: str) -> Outcome:
    session = build_session(targets)
    try:
        return await Poster(targets, session, timeout_seconds=5).send(url, b"{}", {})
    finally:
        await session.close()


async def test_a_name_that_resolves_privately_at_send_time_is_not_contacted() -> None:
    resolver = Flipping(["93.184.216.34"], ["127.0.0.1"])
    targets = TargetCheck(allow_private=False, resolver=resolver)
    checked = await targets.check("https://hooks.example.com/in")
    assert checked.addresses == ("93.184.216.34",)

    outcome = await post(targets, "https://hooks.example.com/in")
    assert not outcome.ok
    assert outcome.status_code is None
    assert outcome.error is not None
    assert outcome.error.startswith("refused (private_address)")


async def test_a_name_that_rebinds_between_the_check_and_the_connection_is_not_contacted() -> None:
    async with local_server() as (port, seen):
        # the check before the send sees a public address; the client's own lookup, made
        # when it connects, sees the loopback one: the connection is refused, not made
        resolver = Flipping(["93.184.216.34"], ["127.0.0.1"])
        outcome = await post(
            TargetCheck(allow_private=False, resolver=resolver), f"http://rebind.test:{port}/in"
        )
    assert resolver.lookups == 2
    assert outcome.error is not None
    assert outcome.error.startswith("refused (private_address)"), outcome.error
    assert seen == []


async def test_the_request_goes_to_the_checked_address_with_the_name_in_host() -> None:
    async with local_server() as (port, seen):
        resolver = Flipping(["127.0.0.1"])
        outcome = await post(
            TargetCheck(allow_private=True, resolver=resolver), f"http://hooks.test:{port}/in?x=1"
        )
    assert outcome.ok, outcome.error
    assert outcome.status_code == 204
    (request,) = seen
    assert request.host == f"hooks.test:{port}"
    assert request.path_qs == "/in?x=1"


async def test_lookups_are_shared_and_kept_briefly() -> None:
    clock = FakeClock(100.0)
    release = asyncio.Event()
    answers = ["93.184.216.34"]
    lookups: list[str] = []

    async def slow(host: str, port: int) -> Sequence[str]:
        lookups.append(host)
        await release.wait()
        return list(answers)

    cached = CachedResolver(slow, ttl_seconds=5, clock=clock)
    waiting = [asyncio.create_task(cached("a.example", 443)) for _ in range(10)]
    while not lookups:
        await asyncio.sleep(0)
    release.set()
    assert {tuple(a) for a in await asyncio.gather(*waiting)} == {("93.184.216.34",)}
    assert lookups == ["a.example"]  # ten callers, one lookup

    answers[:] = ["127.0.0.1"]
    clock.advance(4.9)
    assert list(await cached("a.example", 443)) == ["93.184.216.34"]
    clock.advance(0.2)  # the answer expired: looked up again, the new address seen
    assert list(await cached("a.example", 443)) == ["127.0.0.1"]
    assert lookups == ["a.example", "a.example"]
    # and the check still refuses it
    targets = TargetCheck(allow_private=False, resolver=cached)
    with pytest.raises(WebhookUrlRefused) as refused:
        await targets.check("https://a.example/hook")
    assert refused.value.reason == "private_address"


async def test_a_failed_lookup_is_not_kept() -> None:
    calls = 0

    async def flaky(host: str, port: int) -> Sequence[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("temporary failure in name resolution")
        return ["93.184.216.34"]

    cached = CachedResolver(flaky, ttl_seconds=60, clock=FakeClock())
    with pytest.raises(OSError, match="temporary failure"):
        await cached("b.example", 443)
    assert list(await cached("b.example", 443)) == ["93.184.216.34"]
    assert calls == 2


async def test_an_unresolvable_name_is_refused() -> None:
    async def nowhere(host: str, port: int) -> Sequence[str]:
        raise OSError("Name or service not known")

    with pytest.raises(WebhookUrlRefused) as refused:
        await TargetCheck(allow_private=False, resolver=nowhere).check("https://nowhere.test/")
    assert refused.value.reason == "unresolvable"


def test_signatures_match_the_reference_library() -> None:
    secret = new_secret()
    body = b'{"type":"order.created","data":{"number":"WO-1"}}'
    at = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    ours = signature(secret, "msg_1", int(at.timestamp()), body)
    assert ours == Webhook(secret).sign("msg_1", at, body.decode())


def test_a_rotation_header_carries_one_signature_per_secret() -> None:
    old, new = new_secret(), new_secret()
    header = signature_header([new, old], "msg_2", 1_800_000_000, b"{}")
    assert header.split(" ") == [
        signature(new, "msg_2", 1_800_000_000, b"{}"),
        signature(old, "msg_2", 1_800_000_000, b"{}"),
    ]
