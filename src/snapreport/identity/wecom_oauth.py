"""WeCom OAuth2 web sign-in (网页授权): the authorize URL and its signed, single-use ``state``.

``state`` travels through WeCom and comes back on the callback; WeCom allows only
``[A-Za-z0-9]`` and 128 bytes, so it is fixed-width hex: a 128-bit nonce, the expiry (Unix
seconds, 8 hex digits) and an HMAC-SHA256 of both under the service's signing key. The key is
``SNAPREPORT_WEB__SECRET`` or, when that is empty, derived from ``SNAPREPORT_WECOM__SECRET``:
every worker computes the same one, so a state signed by one worker is accepted by another.

The nonce is also a one-time record in the key-value store holding where to go afterwards
(``next``): a forged state fails the signature, an old one the expiry, and a replayed one the
record, whichever worker it reaches.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from snapreport.errors import SignInStateInvalid
from snapreport.identity.records import OneTimeRecords
from snapreport.identity.redirects import safe_next
from snapreport.kv.base import KeyValueStore

CALLBACK_PATH: Final = "/auth/wecom/callback"
STATE_TTL_SECONDS: Final = 600.0
_NONCE_HEX: Final = 32
_EXPIRY_HEX: Final = 8
_SIG_HEX: Final = 64
STATE_CHARS: Final = _NONCE_HEX + _EXPIRY_HEX + _SIG_HEX
_HEX: Final = frozenset("0123456789abcdef")


def signing_key(web_secret: str, wecom_secret: str) -> bytes:
    """The state signing key: the configured one, or one derived from the WeCom app secret."""
    if web_secret:
        return web_secret.encode()
    return hmac.new(wecom_secret.encode(), b"snapreport oauth state v1", hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class OAuthApp:
    """The WeCom application people sign in with."""

    corp_id: str
    agent_id: str
    oauth_url: str


class WeComSignIn:
    """Builds authorize URLs and checks the ``state`` that comes back.

    Errors: ``SignInStateInvalid``, ``StoreUnavailable``.
    """

    def __init__(
        self,
        app: OAuthApp,
        *,
        key: bytes,
        kv: KeyValueStore,
        clock: Callable[[], float],
        ttl_seconds: float = STATE_TTL_SECONDS,
    ) -> None:
        self._app = app
        self._key = key
        self._clock = clock
        self._ttl = ttl_seconds
        self._pending = OneTimeRecords(kv, prefix="identity:oauth:", ttl_seconds=ttl_seconds)

    async def authorize_url(self, *, base_url: str, next_path: str | None) -> str:
        """Where to send the browser: WeCom's authorize page, coming back to our callback."""
        state = self._sign(secrets.token_hex(_NONCE_HEX // 2))
        await self._pending.put(state, safe_next(next_path).encode())
        query = urlencode(
            {
                "appid": self._app.corp_id,
                "redirect_uri": f"{base_url.rstrip('/')}{CALLBACK_PATH}",
                "response_type": "code",
                "scope": "snsapi_base",
                "state": state,
                "agentid": self._app.agent_id,
            }
        )
        return f"{self._app.oauth_url.rstrip('/')}/connect/oauth2/authorize?{query}#wechat_redirect"

    async def check_state(self, state: str) -> str:
        """The ``next`` path of a state we signed, unexpired and never used before."""
        if len(state) != STATE_CHARS or not set(state) <= _HEX:
            raise SignInStateInvalid("the sign-in state is malformed; start the sign-in again")
        signed, signature = state[: _NONCE_HEX + _EXPIRY_HEX], state[-_SIG_HEX:]
        if not hmac.compare_digest(signature, self._mac(signed)):
            raise SignInStateInvalid("the sign-in state is not ours; start the sign-in again")
        if int(signed[_NONCE_HEX:], 16) < self._clock():
            raise SignInStateInvalid("the sign-in took too long; start it again")
        outcome, value = await self._pending.redeem(state)
        if value is None:
            what = "was already used" if outcome == "used" else "is no longer known"
            raise SignInStateInvalid(f"the sign-in state {what}; start the sign-in again")
        return safe_next(value.decode())

    def _sign(self, nonce: str) -> str:
        expires = int(self._clock() + self._ttl)
        signed = f"{nonce}{expires:0{_EXPIRY_HEX}x}"
        return signed + self._mac(signed)

    def _mac(self, signed: str) -> str:
        return hmac.new(self._key, signed.encode(), hashlib.sha256).hexdigest()
