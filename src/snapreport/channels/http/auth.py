"""Who is calling, checked in ONE place: bearer tokens (``SNAPREPORT_API_TOKEN`` for messages
and user endpoints, ``SNAPREPORT_ADMIN_TOKEN`` for admin endpoints) and, for a request without
an Authorization header, the browser session cookie with its CSRF rule (``browser.py``).

The admin token also opens the user endpoints. When no admin token is set, the API token opens
the admin endpoints; with neither set, everything is open, which ``check_binding`` allows only
on a loopback address.

``Caller`` (the dependency ``CurrentCaller``) says who is acting on the Staff API, and with
which roles:

- the admin token: the user ``admin``, an admin;
- the API (service) token: a trusted backend acting for a user it names in the header
  ``X-Acting-User`` (roles from the rules file). Without the header it acts as an admin only
  where the API token opens the admin endpoints (no admin token set); otherwise 401;
- no tokens set (open, loopback only): the user named by ``X-Acting-User``, or else an admin;
- a browser session (no Authorization header): the signed-in person, with their roles.

The message, user and admin endpoints use ``require_api``/``require_admin`` (by scope); the
Staff API uses ``CurrentCaller``. Both take a session cookie first when no token is sent.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from snapreport.channels.http.browser import browser_session
from snapreport.channels.http.schemas import USER_ID_PATTERN
from snapreport.channels.http.state import get_state
from snapreport.config import Settings
from snapreport.dispatch.roles import Roles, admin_roles
from snapreport.dispatch.rules import Rules
from snapreport.errors import (
    ConfigurationError,
    Forbidden,
    InvalidUserId,
    Unauthorized,
    UserMismatch,
)

Scope = Literal["api", "admin"]
Via = Literal["admin_token", "service_token", "cookie", "open"]

ACTING_USER_HEADER = "X-Acting-User"
_USER_ID = re.compile(r"[A-Za-z0-9_.@:-]{1,64}")

# documents the scheme in OpenAPI; the check itself is ours (auto_error would answer 403)
bearer_scheme = HTTPBearer(auto_error=False, description="SNAPREPORT_API_TOKEN or ADMIN_TOKEN")


@dataclass(frozen=True, slots=True)
class Tokens:
    """The configured tokens, as bytes for constant-time comparison."""

    api: bytes
    admin: bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> Tokens:
        return cls(
            settings.api_token.get_secret_value().encode(),
            settings.admin_token.get_secret_value().encode(),
        )

    @property
    def open(self) -> bool:
        return not self.api and not self.admin

    def accepted(self, scope: Scope) -> tuple[bytes, ...]:
        """The tokens that open ``scope``; empty means the scope is open."""
        if scope == "admin":
            return (self.admin,) if self.admin else (self.api,) if self.api else ()
        if not self.api:
            return ()
        return (self.api, self.admin) if self.admin else (self.api,)

    def presented(self, authorization: str | None) -> Literal["admin", "api"] | None:
        """Which configured token ``authorization`` carries (None: none of them)."""
        if not authorization:
            return None
        kind, _, given = authorization.partition(" ")
        if kind.lower() != "bearer" or not given.strip():
            return None
        token = given.strip().encode()
        admin = bool(self.admin) and hmac.compare_digest(token, self.admin)
        api = bool(self.api) and hmac.compare_digest(token, self.api)
        return "admin" if admin else "api" if api else None

    def check(self, scope: Scope, authorization: str | None) -> None:
        """Raise ``Unauthorized`` unless ``authorization`` carries a token for ``scope``."""
        wanted = self.accepted(scope)
        if not wanted:
            return
        if not authorization:
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        kind, _, given = authorization.partition(" ")
        if kind.lower() != "bearer" or not given.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        presented = given.strip().encode()
        # compare with every candidate, so the time taken does not say which one came close
        matches = [hmac.compare_digest(presented, token) for token in wanted]
        if not any(matches):
            what = "an admin" if scope == "admin" else "an API"
            raise Unauthorized(f"the bearer token is not {what} token")


def check_token(request: Request, scope: Scope) -> None:
    """Raise ``Unauthorized`` unless the request carries a token for ``scope``."""
    tokens: Tokens = request.app.state.tokens
    tokens.check(scope, request.headers.get("authorization"))


def presents_admin_token(request: Request) -> bool:
    """True when an admin token is set and the request carries it: staff, who may see what
    others may not (original photos, the details of a failed readiness check)."""
    tokens: Tokens = request.app.state.tokens
    if not tokens.admin:
        return False
    try:
        tokens.check("admin", request.headers.get("authorization"))
    except Unauthorized:
        return False
    return True


# the parameter only documents the scheme in OpenAPI; the header is read as it came
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is acting on the Staff API, with which roles, proven how."""

    user_id: str  # "admin" for the admin token
    roles: Roles
    via: Via


def resolve_caller(tokens: Tokens, rules: Rules, headers: Mapping[str, str]) -> Caller:
    """The caller a request's headers prove (see module doc), or ``Unauthorized``."""
    acting = headers.get(ACTING_USER_HEADER)
    if acting is not None and not _USER_ID.fullmatch(acting):
        raise InvalidUserId(f"{ACTING_USER_HEADER} must be 1..64 of A-Z a-z 0-9 _ . @ : -")
    if tokens.open:
        if acting is None:
            return Caller("admin", admin_roles(), "open")
        return Caller(acting, rules.roles_of(acting), "open")
    which = tokens.presented(headers.get("authorization"))
    if which == "admin":
        return Caller("admin", admin_roles(), "admin_token")
    if which == "api":
        if acting is not None:
            return Caller(acting, rules.roles_of(acting), "service_token")
        if not tokens.admin:
            return Caller("admin", admin_roles(), "service_token")
        raise Unauthorized(
            f"the API token acts for a user: name them in the {ACTING_USER_HEADER} header"
        )
    raise Unauthorized("missing or unknown bearer token (Authorization: Bearer <token>)")


async def session_caller(request: Request) -> Caller | None:
    """The signed-in person of a request without an Authorization header, or None. The
    session (with its CSRF rule) is checked here; it is also left in
    ``request.state.browser_session``."""
    request.state.browser_session = None
    if request.headers.get("authorization") is not None:
        return None
    app = get_state(request).app
    tokens: Tokens = request.app.state.tokens
    session = await browser_session(request.scope, app.identity, open_service=tokens.open)
    if session is None:
        return None
    request.state.browser_session = session
    return Caller(session.user_id, app.rules.roles_of(session.user_id), "cookie")


async def current_caller(request: Request, _: Bearer) -> Caller:
    """Dependency of the Staff API: the ``Caller`` of this request."""
    signed_in = await session_caller(request)
    if signed_in is not None:
        return signed_in
    rules = get_state(request).app.rules
    return resolve_caller(request.app.state.tokens, rules, request.headers)


CurrentCaller = Annotated[Caller, Depends(current_caller)]


async def authenticate(request: Request, scope: Scope) -> Caller:
    """The credential check of the message, user and admin endpoints: the session cookie when
    no token is sent (an admin's, for ``admin``), else a token for ``scope`` (open: none)."""
    signed_in = await session_caller(request)
    if signed_in is not None:
        if scope == "admin" and not signed_in.roles.admin:
            raise Forbidden(f"signed in as {signed_in.user_id!r}, who is not an admin")
        return signed_in
    tokens: Tokens = request.app.state.tokens
    authorization = request.headers.get("authorization")
    tokens.check(scope, authorization)
    which = tokens.presented(authorization)
    if which == "admin" or tokens.open:
        return Caller("admin", admin_roles(), "admin_token" if which == "admin" else "open")
    # a trusted backend: it names the user it speaks for; an admin only where it opens the
    # admin endpoints (no admin token set)
    roles = admin_roles("service") if not tokens.admin else Roles("service")
    return Caller("service", roles, "service_token")


async def require_api(request: Request, _: Bearer) -> Caller:
    """Dependency of the message and user endpoints: a token, or a browser session."""
    return await authenticate(request, "api")


async def require_admin(request: Request, _: Bearer) -> Caller:
    """Dependency of the admin endpoints: the admin token, or an admin's browser session."""
    return await authenticate(request, "admin")


ApiCaller = Annotated[Caller, Depends(require_api)]


async def own_user_only(
    caller: ApiCaller, user_id: Annotated[str, Path(pattern=USER_ID_PATTERN)]
) -> None:
    """Dependency of ``/api/v1/users/{user_id}/...``: a signed-in person reads only their own
    (dispatchers and admins anyone's); tokens and the open service as before."""
    if caller.via == "cookie" and caller.user_id != user_id and not caller.roles.everywhere:
        raise UserMismatch(f"signed in as {caller.user_id!r}, not {user_id!r}")


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(settings: Settings, host: str) -> bool:
    """True if the service will run open (no tokens); refuse an open service off loopback."""
    tokens = Tokens.from_settings(settings)
    if is_loopback(host):
        return tokens.open
    missing = [
        name
        for name, value in (
            ("SNAPREPORT_API_TOKEN", tokens.api),
            ("SNAPREPORT_ADMIN_TOKEN", tokens.admin),
        )
        if not value
    ]
    if missing:
        raise ConfigurationError(
            f"refusing to listen on {host} without {' and '.join(missing)}: anyone who can reach "
            "it could read and change sessions and orders. Set the tokens, or bind to 127.0.0.1."
        )
    return False
