"""Webhook targets and signatures: which addresses are refused, a name that resolves
differently at send time, and our signatures against the reference library's."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from snapreport.errors import WebhookUrlRefused
from snapreport.webhooks.sender import Poster
from snapreport.webhooks.signing import new_secret, signature, signature_header
from snapreport.webhooks.targets import TargetCheck, refusal


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
    """A resolver whose answer changes between the subscription and the send (DNS rebinding)."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        return self.answers.pop(0)


async def test_a_name_that_resolves_privately_at_send_time_is_not_contacted() -> None:
    resolver = Flipping(["93.184.216.34"], ["127.0.0.1"])
    targets = TargetCheck(allow_private=False, resolver=resolver)
    checked = await targets.check("https://hooks.example.com/in")
    assert checked.address == "93.184.216.34"

    def refuse_any_request(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a request was made to {request.url}")

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse_any_request)) as client:
        outcome = await Poster(targets, client, timeout_seconds=1).send(
            "https://hooks.example.com/in", b"{}", {}
        )
    assert not outcome.ok
    assert outcome.status_code is None
    assert outcome.error is not None
    assert outcome.error.startswith("refused (private_address)")


async def test_the_request_goes_to_the_checked_address_with_the_name_in_host_and_sni() -> None:
    targets = TargetCheck(allow_private=False, resolver=Flipping(["93.184.216.34"]))
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204, stream=httpx.ByteStream(b""))

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        outcome = await Poster(targets, client, timeout_seconds=1).send(
            "https://hooks.example.com:8443/in?x=1", b"{}", {}
        )
    assert outcome.ok
    (request,) = seen
    assert str(request.url) == "https://93.184.216.34:8443/in?x=1"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


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
