"""``Identity``: the parts of sign-in a channel needs, built once by ``bootstrap``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from snapreport.identity.base import CodeExchange
from snapreport.identity.links import SignInLinks
from snapreport.identity.sessions import BrowserSessions
from snapreport.identity.wecom_oauth import WeComSignIn

IdentityMode = Literal["declared", "signin"]


@dataclass(frozen=True, slots=True)
class WeComOAuth:
    """Sign-in through WeCom: the authorize side and the code exchange."""

    signin: WeComSignIn
    exchange: CodeExchange


@dataclass(frozen=True, slots=True)
class Identity:
    """How the web page knows who is speaking.

    ``mode``: ``declared`` (the page names its user; only on an open service on loopback) or
    ``signin`` (a browser session is needed). ``wecom`` is None when WeCom is not configured
    for sign-in. ``secure_cookie``: the service is reached over https.
    """

    mode: IdentityMode
    sessions: BrowserSessions
    links: SignInLinks
    wecom: WeComOAuth | None
    public_url: str
    secure_cookie: bool
