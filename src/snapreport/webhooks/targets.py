"""Where webhooks may be sent: checked when subscribed, and again at every send.

A target is an http(s) URL without credentials whose host resolves only to public addresses:
private, loopback, link-local, multicast, reserved and unspecified ones (and IPv4 ones mapped
into IPv6) are refused unless private targets are allowed. At send time the URL is checked
again, and the HTTP client resolves through the same check (``sender.CheckedResolver``): every
connection goes to an address that passed it, so a name that resolves differently a moment
later cannot redirect a request; redirects are never followed.

The sender resolves through ``CachedResolver``: a host's addresses are looked up once per
``RESOLVE_CACHE_SECONDS`` (concurrent sends to it share the lookup), and every send checks the
addresses it uses again, so the rule above holds for each request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from snapreport.errors import WebhookUrlRefused
from snapreport.webhooks.tables import MAX_URL_LENGTH

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
RESOLVE_TIMEOUT_SECONDS = 5.0
RESOLVE_CACHE_SECONDS = 5.0
MAX_CACHED_HOSTS = 1000
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Target:
    """A checked target: the URL, its host and port, and the addresses to connect to."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The addresses ``host`` resolves to (the system's resolver), within a bound."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class CachedResolver:
    """``resolver``'s answers kept for ``ttl_seconds`` per (host, port), at most
    ``MAX_CACHED_HOSTS`` of them; a failed lookup is not kept."""

    def __init__(
        self,
        resolver: Resolver = system_resolver,
        *,
        ttl_seconds: float = RESOLVE_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolver = resolver
        self._ttl = ttl_seconds
        self._clock = clock
        self._answers: dict[tuple[str, int], tuple[float, asyncio.Future[Sequence[str]]]] = {}

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        key = (host, port)
        now = self._clock()
        cached = self._answers.get(key)
        if cached is not None and cached[0] > now:
            return await asyncio.shield(cached[1])
        if len(self._answers) >= MAX_CACHED_HOSTS:
            self._answers = {k: v for k, v in self._answers.items() if v[0] > now}
            if len(self._answers) >= MAX_CACHED_HOSTS:
                self._answers.clear()
        lookup = asyncio.ensure_future(self._resolver(host, port))
        self._answers[key] = (now + self._ttl, lookup)
        lookup.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(lookup)

    def _settled(self, key: tuple[str, int], lookup: asyncio.Future[Sequence[str]]) -> None:
        if lookup.cancelled() or lookup.exception() is not None:
            cached = self._answers.get(key)
            if cached is not None and cached[1] is lookup:
                del self._answers[key]


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
        return Target(url=url, host=host, port=port, addresses=await self.addresses(host, port))

    async def addresses(self, host: str, port: int) -> tuple[str, ...]:
        """The addresses ``host`` resolves to, every one of them allowed; else
        ``WebhookUrlRefused`` naming why not."""
        try:
            found = tuple(await self._resolver(host, port))
        except (OSError, TimeoutError) as exc:
            raise WebhookUrlRefused(
                f"the host {host!r} does not resolve: {exc}", reason="unresolvable"
            ) from exc
        if not found:
            raise WebhookUrlRefused(f"the host {host!r} does not resolve", reason="unresolvable")
        if not self._allow_private:
            for text in found:
                address = ipaddress.ip_address(text.split("%", 1)[0])
                why = refusal(address)
                if why is not None:
                    raise WebhookUrlRefused(
                        f"the host {host!r} resolves to {address}, a {why} address; webhooks "
                        "go to public addresses only (SNAPREPORT_WEBHOOKS__ALLOW_PRIVATE=true "
                        "allows others)",
                        reason="private_address",
                    )
        return found
