"""The Open311 application, mounted at ``/open311/v2`` by the HTTP app.

A mounted application of its own, so that every answer under the prefix, errors included,
is in the specification's shape: ``[{"code", "description"}]`` in JSON, ``<errors><error>``
in XML, in the format the path asks for (XML, the required one, when it names none). The
HTTP status is 403 for a missing or wrong ``api_key``, 404 for what does not exist, 429 and
5xx as they are, and 400 for every other refusal, as the specification says.

Only ``POST requests`` needs an API key. A key in the query string is checked before the body
is read; a key in the form is checked before anything in the body is used or stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import Callable, Sequence
from typing import Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from snapreport.channels.http.errors import public_message
from snapreport.channels.http.state import HttpState
from snapreport.channels.open311 import intake, search, views
from snapreport.channels.open311.documents import Format, Node, answer, encode, render
from snapreport.channels.open311.intake import SOURCE, Submission
from snapreport.channels.open311.parts import Open311Parts
from snapreport.errors import (
    DecoderBusy,
    ImageTooLarge,
    InvalidInput,
    RateLimited,
    SnapreportError,
    UnsupportedMediaType,
)
from snapreport.logs import get_logger
from snapreport.media.metadata import strip_metadata
from snapreport.orders.base import MessageKey, Order

log = get_logger("snapreport.open311")

PREFIX: Final = "/open311/v2"
SPECIFICATION: Final = "http://wiki.open311.org/GeoReport_v2"
CHANGESET: Final = "2026-11-29T00:00:00Z"
MAX_FORM_FIELDS: Final = 64
MAX_FIELD_BYTES: Final = 64 * 1024
_RETRY_KEY: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_FORM_TYPES: Final = ("application/x-www-form-urlencoded", "multipart/form-data")

StateOf = Callable[[], HttpState]


def create_open311_app(state_of: StateOf) -> FastAPI:
    """The Open311 application; ``state_of`` gives the running service's shared state."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(SnapreportError, _on_error)
    app.add_exception_handler(RequestValidationError, _on_error)
    app.add_exception_handler(StarletteHTTPException, _on_error)
    app.add_exception_handler(Exception, _on_error)

    def parts() -> tuple[HttpState, Open311Parts]:
        state = state_of()
        return state, state.app.open311

    @app.get("/discovery.{fmt}")
    async def discovery(fmt: str, request: Request) -> Response:
        fmt_ = _format(fmt)
        _, open311 = parts()
        texts = open311.texts
        base = str(request.url_for("discovery", fmt="xml")).removesuffix("/discovery.xml")
        document: Node = {
            "changeset": CHANGESET,
            "contact": open311.contact or texts("open311.contact"),
            "key_service": open311.key_service or texts("open311.key_service"),
            "endpoints": [
                {
                    "specification": SPECIFICATION,
                    "url": base,
                    "changeset": CHANGESET,
                    "type": "production",
                    "formats": ["text/xml", "application/json"],
                }
            ],
        }
        return render(fmt_, "discovery", document)

    @app.get("/services.{fmt}")
    async def services(fmt: str) -> Response:
        fmt_ = _format(fmt)
        state, open311 = parts()
        ctx = state.app
        catalog = tuple(ctx.settings.alarm_types)
        return render(fmt_, "services", views.services(catalog, ctx.rules, open311.texts))

    @app.post("/requests.{fmt}")
    async def create_request(fmt: str, request: Request) -> Response:
        fmt_ = _format(fmt)
        state, open311 = parts()
        in_query = request.query_params.get("api_key")
        if in_query is not None:
            key = open311.keys.check(in_query)
        content_type = request.headers.get("content-type", "").lower()
        if not content_type.startswith(_FORM_TYPES):
            raise UnsupportedMediaType(
                "send the request as application/x-www-form-urlencoded "
                "(or multipart/form-data with a media file)"
            )
        ctx = state.app
        async with request.form(
            max_files=1, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FIELD_BYTES
        ) as form:
            if in_query is None:
                in_form = form.get("api_key")
                key = open311.keys.check(in_form if isinstance(in_form, str) else None)
            submission = intake.parse(form, tuple(ctx.settings.alarm_types))

            retry_key = request.headers.get("idempotency-key")
            message = None if retry_key is None else retry_message(key, retry_key)

            async def file() -> bytes:
                return await _file(fmt_, state, open311, submission, message)

            if retry_key is None:
                body = await file()
            else:
                scope = idempotency_scope(key, fmt_, retry_key)
                body, _ = await state.idempotency.run(scope, retry_key, file)
        return answer(fmt_, body)

    @app.get("/requests.{fmt}")
    async def list_requests(fmt: str, request: Request) -> Response:
        fmt_ = _format(fmt)
        state, _ = parts()
        wanted = search.parse(request.query_params, state.app.dispatch.now())
        page = await state.app.orders.page(wanted.query, limit=wanted.limit)
        return render(fmt_, "service_requests", await _records(request, page.orders))

    @app.get("/requests/{service_request_id}.{fmt}")
    async def show_request(service_request_id: str, fmt: str, request: Request) -> Response:
        fmt_ = _format(fmt)
        state, _ = parts()
        if len(service_request_id) > 64:
            raise InvalidInput("service_request_id is longer than 64 characters")
        order = await state.app.dispatch.get(service_request_id)
        return render(fmt_, "service_requests", await _records(request, [order]))

    @app.get("/media/{key:path}", name="media")
    async def photo(key: str, request: Request) -> Response:
        state, open311 = parts()
        expires = request.query_params.get("expires", "")
        signature = request.query_params.get("signature", "")
        open311.links.check(key, expires, signature, state.clock())
        data, mime = await state.app.media.get(key)
        data = await asyncio.to_thread(strip_metadata, data, mime)
        headers = {"Cache-Control": f"private, max-age={open311.links.ttl_seconds}"}
        return Response(data, media_type=mime, headers=headers)

    async def _records(request: Request, orders: Sequence[Order]) -> list[Node]:
        state, open311 = parts()
        now = state.clock()
        changed = await state.app.orders.last_changed([order.number for order in orders])
        records: list[Node] = []
        for order in orders:
            photo_url = None
            if order.image_key is not None:
                link = request.url_for("media", key=order.image_key)
                photo_url = f"{link}?{open311.links.query(order.image_key, now)}"
            records.append(
                views.request_record(
                    order,
                    rules=state.app.rules,
                    texts=open311.texts,
                    photo_url=photo_url,
                    updated=changed.get(order.number),
                )
            )
        return records

    return app


async def _file(
    fmt: Format,
    state: HttpState,
    open311: Open311Parts,
    submission: Submission,
    message: MessageKey | None,
) -> bytes:
    """File ``submission`` (its photo checked by the decoder and stored first) and encode
    the answer. With ``message`` (a client's Idempotency-Key), the order records it in the
    database: a retry whose first answer was lost (the key-value store's copy included)
    answers with that first order, and stores no second photo."""
    ctx = state.app
    filed = None if message is None else await ctx.dispatch.written_by(message)
    if filed is not None:
        order = filed[1]
    else:
        image_key = None
        if submission.media is not None:
            data = await _read(submission.media, ctx.settings.media.max_bytes)
            checked = await state.decoder.check(data)
            declared = submission.media.content_type
            image_key = (await ctx.media.put_image(checked.image, declared_mime=declared)).key
        order = await ctx.dispatch.create(submission.report(image_key, message))
    log.info(
        "open311_request_filed",
        number=order.number,
        service_code=order.alarm_type,
        team=order.team,
        photo=order.image_key is not None,
    )
    team = views.team_name(ctx.rules, order.team)
    notice = (
        open311.texts("open311.notice_team", number=order.number, team=team)
        if team is not None
        else open311.texts("open311.notice", number=order.number)
    )
    record: Node = {
        "service_request_id": order.number,
        "service_notice": notice,
        "account_id": submission.account_id,
    }
    return encode(fmt, "service_requests", [record])


def idempotency_scope(api_key: str, fmt: Format, retry_key: str) -> str:
    """Whose retries ``retry_key`` names: one client (by its key) asking for one format. The
    ``/`` keeps it apart from every chat user id, which cannot contain one."""
    _check_retry_key(retry_key)
    return f"open311/{_client(api_key)}/{fmt}"


def retry_message(api_key: str, retry_key: str) -> MessageKey:
    """The order source a request with ``retry_key`` records: channel "open311", the client
    (by a digest of its key, never the key) and the key, whatever the format asked for."""
    _check_retry_key(retry_key)
    return MessageKey(SOURCE, _client(api_key), retry_key)


def _client(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def _check_retry_key(retry_key: str) -> None:
    if not _RETRY_KEY.fullmatch(retry_key):
        raise InvalidInput("Idempotency-Key must be 1 to 128 of A-Z a-z 0-9 _ . : -")


def _format(fmt: str) -> Format:
    if fmt == "xml":
        return "xml"
    if fmt == "json":
        return "json"
    raise StarletteHTTPException(404, f"unknown format {fmt[:20]!r}: use .xml or .json")


async def _read(upload: UploadFile, max_bytes: int) -> bytes:
    """The uploaded file, refused once it passes ``max_bytes``."""
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageTooLarge(f"media is larger than {max_bytes} bytes")
    return data


def _status(exc: Exception) -> tuple[int, str]:
    """The HTTP status (the specification's) and the description a caller may read."""
    if isinstance(exc, SnapreportError):
        status, description = exc.http_status, public_message(exc)
    elif isinstance(exc, StarletteHTTPException):
        status, description = exc.status_code, str(exc.detail)
    elif isinstance(exc, RequestValidationError):
        status, description = 400, "the request's parameters do not fit the API"
    else:
        return 500, "internal error; see the server log"
    if status == 401:
        status = 403
    elif status < 500 and status not in (403, 404, 405, 429):
        status = 400
    return status, description


async def _on_error(request: Request, exc: Exception) -> Response:
    status, description = _status(exc)
    code = exc.code if isinstance(exc, SnapreportError) else f"http_{status}"
    if status >= 500:
        if isinstance(exc, SnapreportError):
            log.warning("open311_failed", code=code, error=exc.message)
        else:
            log.exception("open311_crashed", error_type=type(exc).__name__)
    else:
        log.info("open311_refused", code=code, status=status, error=description)
    fmt: Format = "json" if request.url.path.endswith(".json") else "xml"
    errors: Node = [{"code": status, "description": description}]
    response = render(fmt, "errors", errors, status=status)
    if isinstance(exc, RateLimited | DecoderBusy):
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return response
