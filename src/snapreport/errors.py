"""The one exception tree of snapreport.

Adapters convert their drivers' errors (redis, SQLAlchemy, httpx, botocore, Pillow) into these
at their boundary (``raise StoreUnavailable(...) from exc``); channels map them to replies and
HTTP statuses in one place, by ``code`` and ``http_status``.

::

    SnapreportError
    ├── InvalidInput                     400  bad data from a caller; nothing was changed
    │   ├── InvalidRequest               422  a request's fields do not fit the API
    │   ├── MalformedJson                a body that is not JSON
    │   ├── UnsupportedMediaType         415  a body type the API does not take
    │   ├── RequestTooLarge              413
    │   ├── InvalidUserId
    │   ├── InvalidState
    │   ├── TextTooLong
    │   ├── InvalidSlotValue
    │   ├── InvalidHistory
    │   ├── InvalidImage                 415/413  not an image we accept
    │   │   ├── UnsupportedImageType
    │   │   ├── ImageTooLarge
    │   │   └── DecompressionBomb
    │   ├── InvalidMediaKey
    │   ├── HostNotAllowed               open service: a Host header not allowed
    │   ├── InvalidSignature             403  (WeCom: signature or ciphertext rejected)
    │   ├── SignInStateInvalid           a WeCom sign-in ``state`` forged, expired or replayed
    │   ├── SignInLinkInvalid            a sign-in link unknown, expired or already used
    │   └── WebhookUrlRefused            a webhook target we will not send to (``reason``)
    ├── Unauthorized                     401
    │   └── NotSignedIn                  no live browser session
    ├── Forbidden                        403
    │   ├── CsrfFailed                   a cookie request without the session's X-CSRF-Token
    │   ├── UserMismatch                 a user id other than the signed-in one
    │   ├── SignInRefused                WeCom did not vouch for the person
    │   ├── NotPermitted                 the caller sees the order but may not do this
    │   │   └── NotOrderOwner            (closing: not its reporter, assignee or lead)
    │   ├── InvalidApiKey                Open311: a missing or unknown api_key
    │   └── InvalidMediaLink             Open311: a photo link unsigned, altered or expired
    ├── NotFound                         404
    │   ├── WeComNotConfigured
    │   ├── SessionNotFound
    │   ├── OrderNotFound
    │   ├── MediaNotFound
    │   ├── UnknownService               Open311: a service_code not in the catalog
    │   └── WebhookNotFound              no such webhook (or delivery of it)
    ├── Conflict                         409
    │   ├── OrderStateConflict           the order's status does not allow the change
    │   │   ├── OrderAlreadyClosed
    │   │   └── OrderAlreadyAccepted     someone else has it (``by`` names them)
    │   └── LockLost                     the turn lost its lock; its save was refused
    ├── RateLimited                      429
    ├── SessionBusy                      503  waited too long for the user's lock
    ├── Unavailable                      503  a backing service failed or is away
    │   ├── StoreUnavailable
    │   ├── VisionUnavailable
    │   ├── MediaUnavailable
    │   ├── WeComUnavailable
    │   └── TooManyStreams               this process holds its limit of live streams
    └── ConfigurationError               the settings cannot work together
"""

from __future__ import annotations

from typing import ClassVar


class SnapreportError(Exception):
    """Base of every error snapreport raises on purpose."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(SnapreportError, ValueError):
    """A caller sent something we cannot accept; nothing was changed."""

    code = "invalid_input"
    http_status = 400


class InvalidRequest(InvalidInput):
    """The request's fields do not fit the API (a missing field, a wrong type, a bad value)."""

    code = "invalid_request"
    http_status = 422


class MalformedJson(InvalidInput):
    code = "malformed_json"
    http_status = 400


class UnsupportedMediaType(InvalidInput):
    code = "unsupported_media_type"
    http_status = 415


class RequestTooLarge(InvalidInput):
    code = "request_too_large"
    http_status = 413


class BodyTimeout(InvalidInput):
    """The request body did not arrive within the body-read deadline."""

    code = "body_timeout"
    http_status = 408


class InvalidUserId(InvalidInput):
    code = "invalid_user_id"


class InvalidState(InvalidInput):
    code = "invalid_state"


class TextTooLong(InvalidInput):
    code = "text_too_long"


class InvalidSlotValue(InvalidInput):
    code = "invalid_slot_value"


class InvalidHistory(InvalidInput):
    code = "invalid_history"


class InvalidImage(InvalidInput):
    code = "invalid_image"
    http_status = 415


class UnsupportedImageType(InvalidImage):
    code = "unsupported_image_type"


class ImageTooLarge(InvalidImage):
    code = "image_too_large"
    http_status = 413


class DecompressionBomb(InvalidImage):
    code = "decompression_bomb"
    http_status = 413


class InvalidMediaKey(InvalidInput):
    code = "invalid_media_key"


class HostNotAllowed(InvalidInput):
    """Open (no tokens), the service answers only the names in its Host allow-list."""

    code = "host_not_allowed"


class InvalidSignature(InvalidInput):
    code = "invalid_signature"
    http_status = 403


class WebhookUrlRefused(InvalidInput):
    """A webhook target snapreport will not send to; ``reason`` names the rule (scheme,
    private_address, unresolvable, ...)."""

    code = "webhook_url_refused"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class Unauthorized(SnapreportError):
    code = "unauthorized"
    http_status = 401


class SignInStateInvalid(InvalidInput):
    code = "signin_state_invalid"


class SignInLinkInvalid(InvalidInput):
    code = "signin_link_invalid"


class NotSignedIn(Unauthorized):
    code = "not_signed_in"


class Forbidden(SnapreportError):
    code = "forbidden"
    http_status = 403


class CsrfFailed(Forbidden):
    code = "csrf_failed"


class UserMismatch(Forbidden):
    code = "user_mismatch"


class SignInRefused(Forbidden):
    code = "signin_refused"


class NotPermitted(Forbidden):
    """The caller may see the order but not do this to it; ``reason`` names the rule."""

    code = "not_permitted"

    def __init__(self, message: str, *, reason: str = "not_permitted") -> None:
        super().__init__(message)
        self.reason = reason


class NotOrderOwner(NotPermitted):
    code = "not_order_owner"

    def __init__(self, message: str, *, reason: str = "not_owner") -> None:
        super().__init__(message, reason=reason)


class NotFound(SnapreportError):
    code = "not_found"
    http_status = 404


class WeComNotConfigured(NotFound):
    code = "wecom_not_configured"


class SessionNotFound(NotFound):
    code = "session_not_found"


class OrderNotFound(NotFound):
    code = "order_not_found"


class InvalidApiKey(Forbidden):
    code = "invalid_api_key"


class InvalidMediaLink(Forbidden):
    code = "invalid_media_link"


class UnknownService(NotFound):
    code = "unknown_service"


class MediaNotFound(NotFound):
    code = "media_not_found"


class WebhookNotFound(NotFound):
    code = "webhook_not_found"


class Conflict(SnapreportError):
    code = "conflict"
    http_status = 409


class OrderStateConflict(Conflict):
    """The order's status does not allow the change (``status`` is the one it has)."""

    code = "order_state_conflict"

    def __init__(self, message: str, *, status: str = "") -> None:
        super().__init__(message)
        self.status = status


class OrderAlreadyClosed(OrderStateConflict):
    code = "order_already_closed"

    def __init__(self, message: str, *, status: str = "closed") -> None:
        super().__init__(message, status=status)


class OrderAlreadyAccepted(OrderStateConflict):
    """Someone accepted the order first; ``by`` is their user id."""

    code = "order_already_accepted"

    def __init__(self, message: str, *, by: str) -> None:
        super().__init__(message, status="accepted")
        self.by = by


class LockLost(Conflict):
    """A turn's lock expired or was taken over before it committed; its save was refused."""

    code = "lock_lost"


class RateLimited(SnapreportError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SessionBusy(SnapreportError):
    """Waited longer than allowed for the user's lock."""

    code = "session_busy"
    http_status = 503


class Unavailable(SnapreportError):
    code = "unavailable"
    http_status = 503


class DecoderBusy(Unavailable):
    """Every image decoder of the process is busy; the client should send again shortly."""

    code = "decoder_busy"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(Unavailable):
    code = "store_unavailable"


class VisionUnavailable(Unavailable):
    code = "vision_unavailable"


class MediaUnavailable(Unavailable):
    code = "media_unavailable"


class WeComUnavailable(Unavailable):
    code = "wecom_unavailable"


class TooManyStreams(Unavailable):
    """This process already holds ``LIVE__MAX_STREAMS`` live streams."""

    code = "too_many_streams"


class ConfigurationError(SnapreportError):
    code = "configuration_error"
