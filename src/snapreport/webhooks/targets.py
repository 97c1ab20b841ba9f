"""Where webhooks may be sent: checked when subscribed, and again at every send.

A target is an http(s) URL without credentials whose host resolves only to public addresses:
private, loopback, link-local, multicast, reserved and unspecified ones (and IPv4 ones mapped
into IPv6) are refused unless private targets are allowed. At send time the request goes to the
address that was checked (the host name stays in ``Host`` and TLS SNI), so a name that resolves
differently a moment later cannot redirect it; redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from snapreport.errors import WebhookUrlRefused
from snapreport.webhooks.tables import MAX_URL_LENGTH

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
RESOLVE_TIMEOUT_SECONDS = 5.0
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Target:
    """A checked target: the URL, its host and port, and the address to connect to."""

    url: str
    host: str
    port: int
    address: str


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The addresses ``host`` resolves to (the system's resolver), within a bound."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def parse(url: str) -> tuple[str, int]:
    """The host and port of a target URL; refuses what is not a plain http(s) URL."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlRefused(
            f"a webhook URL has at most {MAX_URL_LENGTH} characters", reason="too_long"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlRefused(f"not a URL: {exc}", reason="malformed") from exc
    if parts.scheme not in ("http", "https"):
        raise WebhookUrlRefused("a webhook URL must be http:// or https://", reason="scheme")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlRefused("a webhook URL must not carry credentials", reason="credentials")
    host = parts.hostname
    if not host:
        raise WebhookUrlRefused("a webhook URL needs a host", reason="malformed")
    return host, port or (443 if parts.scheme == "https" else 80)


def refusal(address: IpAddress) -> str | None:
    """Why ``address`` is not a public one (None when it is)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for name, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-public", not address.is_global),
    ):
        if flag:
            return name
    return None


class TargetCheck:
    """Checks targets with a resolver; ``allow_private`` lets any address through."""

    def __init__(self, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
        self._allow_private = allow_private
        self._resolver = resolver

    async def check(self, url: str) -> Target:
        """The target to connect to, or ``WebhookUrlRefused`` naming why not."""
        host, port = parse(url)
        try:
            found = await self._resolver(host, port)
        except (OSError, TimeoutError) as exc:
            raise WebhookUrlRefused(
                f"the host {host!r} does not resolve: {exc}", reason="unresolvable"
            ) from exc
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        if not addresses:
            raise WebhookUrlRefused(f"the host {host!r} does not resolve", reason="unresolvable")
        if not self._allow_private:
            for address in addresses:
                why = refusal(address)
                if why is not None:
                    raise WebhookUrlRefused(
                        f"the host {host!r} resolves to {address}, a {why} address; webhooks "
                        "go to public addresses only (SNAPREPORT_WEBHOOKS__ALLOW_PRIVATE=true "
                        "allows others)",
                        reason="private_address",
                    )
        return Target(url=url, host=host, port=port, address=str(addresses[0]))
