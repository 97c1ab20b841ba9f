"""Sign-in routes: WeCom OAuth, one-time links, logout, and ``GET /api/v1/me``.

- ``GET /auth/wecom/login?next=/console``: 303 to WeCom's authorize page with a signed,
  single-use ``state``.
- ``GET /auth/wecom/callback?code&state``: checks the state, asks WeCom whose ``code`` it is,
  opens a browser session (the cookie) and sends the browser on to ``next``.
- ``GET /auth/link/{token}``: the same for a link issued by ``登录``/``login`` in chat.
- ``POST /auth/logout``: ends the session on every worker and deletes the cookie.
- ``GET /auth/options``: how the page signs people in (``declared``/``signin``, WeCom or not).

``next`` is only ever a path of ours (``identity.redirects.safe_next``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from snapreport.channels.http.browser import browser_session, forget_renewal, session_cookie
from snapreport.channels.http.schemas import ErrorOut
from snapreport.channels.http.state import HttpState, State
from snapreport.errors import NotSignedIn, WeComNotConfigured
from snapreport.identity.redirects import MAX_NEXT_CHARS, safe_next
from snapreport.identity.service import Identity, WeComOAuth
from snapreport.logs import get_logger

log = get_logger("snapreport.identity")
router = APIRouter(tags=["identity"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 422, 503)
}
# a redirect that carries or follows a secret is not cached (every answer already carries
# Referrer-Policy: no-referrer, see browser_guard.py)
_PRIVATE = {"Cache-Control": "no-store"}


class MeOut(BaseModel):
    """The signed-in user: who, their roles and teams, and the token for X-CSRF-Token."""

    user_id: str
    roles: list[str]
    teams: list[str]
    csrf_token: str


class SignInOptions(BaseModel):
    """How the web page learns who it speaks for."""

    identity: Literal["declared", "signin"]
    wecom: bool


def _open_service(request: Request) -> bool:
    return bool(request.app.state.tokens.open)


def _signed_in(identity: Identity, user_id: str, session_id: str, next_path: str) -> Response:
    response = RedirectResponse(next_path, status_code=303, headers=_PRIVATE)
    response.headers.append("set-cookie", session_cookie(identity, session_id))
    log.info("signed_in", user_id=user_id)
    return response


@router.get("/auth/options", response_model=SignInOptions)
async def options(state: State) -> SignInOptions:
    """``declared``: the page names its user (an open service on loopback); ``signin``: it
    needs a browser session. ``wecom``: WeCom sign-in is configured."""
    identity = state.app.identity
    return SignInOptions(identity=identity.mode, wecom=identity.wecom is not None)


@router.get("/auth/wecom/login", responses={303: {"description": "to WeCom"}, **_ERRORS})
async def wecom_login(
    request: Request,
    state: State,
    next: Annotated[str | None, Query(max_length=MAX_NEXT_CHARS)] = None,
) -> Response:
    """Send the browser to WeCom's authorize page; it comes back to the callback."""
    oauth = _oauth(state)
    base = state.app.identity.public_url or str(request.base_url)
    url = await oauth.signin.authorize_url(base_url=base, next_path=next)
    return RedirectResponse(url, status_code=303, headers=_PRIVATE)


@router.get("/auth/wecom/callback", responses={303: {"description": "signed in"}, **_ERRORS})
async def wecom_callback(
    state: State,
    code: Annotated[str, Query(min_length=1, max_length=512)],
    state_: Annotated[str, Query(alias="state", min_length=1, max_length=256)],
) -> Response:
    """WeCom's redirect back: check ``state``, learn the member from ``code``, sign in."""
    oauth = _oauth(state)
    next_path = await oauth.signin.check_state(state_)
    user_id = await oauth.exchange.user_of_code(code)
    session = await state.app.identity.sessions.open(user_id)
    return _signed_in(state.app.identity, user_id, session.id, next_path)


@router.get("/auth/link/{token}", responses={303: {"description": "signed in"}, **_ERRORS})
async def link(
    state: State,
    token: Annotated[str, Path(min_length=16, max_length=128)],
    next: Annotated[str | None, Query(max_length=MAX_NEXT_CHARS)] = None,
) -> Response:
    """A one-time sign-in link from ``登录``/``login``: sign in and go to ``next`` (or ``/``)."""
    identity = state.app.identity
    user_id = await identity.links.redeem(token)
    session = await identity.sessions.open(user_id)
    return _signed_in(identity, user_id, session.id, safe_next(next))


@router.post("/auth/logout", status_code=204, responses=_ERRORS)
async def logout(request: Request, state: State) -> Response:
    """End this browser's session on every worker and delete its cookie (needs the CSRF
    header, so another site cannot sign people out)."""
    identity = state.app.identity
    session = await browser_session(request.scope, identity, open_service=True)
    forget_renewal(request.scope)  # the cookie is being deleted, not sent again
    if session is not None:
        await identity.sessions.close(session.id)
        log.info("signed_out", user_id=session.user_id)
    response = Response(status_code=204, headers=_PRIVATE)
    response.headers.append("set-cookie", session_cookie(identity, "", max_age=0))
    return response


@router.get("/api/v1/me", response_model=MeOut, responses=_ERRORS)
async def me(request: Request, state: State) -> MeOut:
    """The signed-in user (401 ``not_signed_in`` without a browser session)."""
    session = await browser_session(
        request.scope, state.app.identity, open_service=_open_service(request)
    )
    if session is None:
        raise NotSignedIn("not signed in: open a sign-in link, or sign in with WeCom")
    roles = state.app.rules.roles_of(session.user_id)
    return MeOut(
        user_id=session.user_id,
        roles=roles.names(),
        teams=sorted(roles.teams),
        csrf_token=session.csrf_token,
    )


def _oauth(state: HttpState) -> WeComOAuth:
    oauth = state.app.identity.wecom
    if oauth is None:
        raise WeComNotConfigured(
            "WeCom sign-in is not configured (SNAPREPORT_WECOM__CORP_ID, AGENT_ID and SECRET)"
        )
    return oauth
