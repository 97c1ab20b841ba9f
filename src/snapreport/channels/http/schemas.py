"""Request and response bodies of the HTTP API, with the field names of the API contract."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from snapreport.session.model import USER_ID_PATTERN as USER_ID_PATTERN  # the one rule

MESSAGE_ID_PATTERN: Final = r"^[!-~]{1,128}$"  # visible ASCII: uuids, WeCom MsgIds, ...
MAX_TEXT_CHARS: Final = 2000
MAX_IMAGE_BYTES: Final = 20 * 1024 * 1024
# base64 of MAX_IMAGE_BYTES, plus room for a data: URL prefix
MAX_IMAGE_BASE64_CHARS: Final = 4 * -(-MAX_IMAGE_BYTES // 3) + 64
MAX_LABEL_CHARS: Final = 200
# a BCP 47 tag as browsers send it (navigator.language): "zh-CN", "en-GB", "zh-Hant-TW"
MAX_LANGUAGE_HINT_CHARS: Final = 35
_LANGUAGE_DOC = (
    "the channel's hint of the user's language (a browser's language, a BCP 47 tag); it "
    "chooses the reply language (zh-CN for any Chinese, en for any English; anything else is "
    "ignored) of a session that has none yet"
)

State = Literal["idle", "waiting_location", "waiting_confirm", "waiting_close_photo"]


class ImageIn(BaseModel):
    """A photo as base64 (a ``data:`` URL is accepted too); the bytes decide its type."""

    data: str = Field(
        min_length=1, max_length=MAX_IMAGE_BASE64_CHARS, json_schema_extra={"format": "byte"}
    )
    mime: str | None = Field(None, max_length=100, examples=["image/jpeg"])


class LocationIn(BaseModel):
    latitude: float = Field(ge=-90, le=90, allow_inf_nan=False)
    longitude: float = Field(ge=-180, le=180, allow_inf_nan=False)
    label: str = Field("", max_length=MAX_LABEL_CHARS)


_USER_ID_DOC = (
    "Required with a bearer token or on an open service. With a browser session (cookie) the "
    "session's user speaks: leave it out, or send that same id (another one is 403)."
)


class MessageIn(BaseModel):
    """One user message: at least one of ``text``, ``image`` and ``location``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"user_id": "zhangsan", "message_id": "m-1", "text": "3号楼东侧楼梯间"}],
            # as a bearer token or an open service needs it (a browser session may leave it out)
            "required": ["user_id"],
            # at least one of them, and not null
            "anyOf": [
                {"required": ["text"], "properties": {"text": {"type": "string"}}},
                {"required": ["image"], "properties": {"image": {"type": "object"}}},
                {"required": ["location"], "properties": {"location": {"type": "object"}}},
            ],
        }
    )

    user_id: Annotated[
        str | None,
        WithJsonSchema({"type": "string", "pattern": USER_ID_PATTERN}),
    ] = Field(None, pattern=USER_ID_PATTERN, description=_USER_ID_DOC)
    message_id: str | None = Field(None, pattern=MESSAGE_ID_PATTERN)
    text: str | None = Field(None, max_length=MAX_TEXT_CHARS)
    image: ImageIn | None = None
    location: LocationIn | None = None
    language: str | None = Field(
        None, max_length=MAX_LANGUAGE_HINT_CHARS, description=_LANGUAGE_DOC, examples=["en-GB"]
    )

    @model_validator(mode="after")
    def _not_empty(self) -> MessageIn:
        if self.text is None and self.image is None and self.location is None:
            raise ValueError("at least one of text, image or location is required")
        return self


class MessageForm(BaseModel):
    """The multipart/form-data form of a message (documentation only; parsed by hand)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["text"]},
                {"required": ["image"]},
                {"required": ["latitude", "longitude"]},
            ]
        }
    )

    user_id: str = Field(pattern=USER_ID_PATTERN, description=_USER_ID_DOC)
    message_id: str = Field("", pattern=MESSAGE_ID_PATTERN)
    text: str = Field("", min_length=1, max_length=MAX_TEXT_CHARS)
    image: bytes = Field(b"", json_schema_extra={"format": "binary"})
    latitude: float = Field(0.0, ge=-90, le=90)
    longitude: float = Field(0.0, ge=-180, le=180)
    label: str = Field("", max_length=MAX_LABEL_CHARS)
    language: str = Field("", max_length=MAX_LANGUAGE_HINT_CHARS, description=_LANGUAGE_DOC)


class ReplyOut(BaseModel):
    type: str = "text"
    text: str


class OrderOut(BaseModel):
    number: str
    status: Literal["open", "accepted", "closed", "rejected"]
    alarm_type: str
    location: str
    description: str
    reporter: str
    assignee: str | None
    created_at: datetime
    closed_at: datetime | None
    close_verified: bool | None
    forced: bool
    closed_by: str | None = None
    close_note: str | None = None
    image_key: str | None = None
    image_keys: list[str] = Field(default_factory=list)
    close_image_key: str | None = None
    image_url: str | None = None
    team: str | None = None
    accepted_at: datetime | None = None
    due_accept_at: datetime | None = None
    due_resolve_at: datetime | None = None
    escalation: int = 0
    latitude: float | None = None
    longitude: float | None = None
    reject_reason: str | None = None
    also_reported_by: list[str] = Field(default_factory=list)


class MessageOut(BaseModel):
    message_id: str | None
    duplicate: bool = False
    replies: list[ReplyOut]
    state: State
    order: OrderOut | None = None
    choices: list[str] = Field(
        default_factory=list,
        description="answers the last reply offers, by number (1-based) or name; "
        "a page may show them as buttons",
    )
    language: str = Field(
        "", description="the language of the replies (zh-CN or en), as the session keeps it"
    )


class OrderEventOut(BaseModel):
    kind: str
    actor: str
    detail: str
    at: datetime


class OrderDetail(OrderOut):
    events: list[OrderEventOut]


class OrderList(BaseModel):
    orders: list[OrderOut]


class OrderPageOut(BaseModel):
    """A page of orders, newest first; ``next_cursor`` (if not null) fetches the next one."""

    orders: list[OrderOut]
    next_cursor: str | None


class TransferIn(BaseModel):
    to: str = Field(min_length=1, max_length=64, description="a user id or a team id")


class RejectIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class CloseIn(BaseModel):
    note: str = Field("", max_length=MAX_TEXT_CHARS)
    image: ImageIn | None = None


class ReopenIn(BaseModel):
    reason: str = Field("", max_length=500)


class CommentIn(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class NewOrderIn(BaseModel):
    """An order raised by an external alarm system."""

    alarm_type: str = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=MAX_TEXT_CHARS)
    location: str = Field(min_length=1, max_length=MAX_LABEL_CHARS)
    assignee: str | None = Field(None, pattern=USER_ID_PATTERN)
    reporter: str = Field("alarm-system", pattern=USER_ID_PATTERN)
    image: ImageIn | None = None
    latitude: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False)
    longitude: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False)


class SessionSummary(BaseModel):
    user_id: str
    state: State
    turns: int
    updated_at: float
    expires_in: float


class SessionPageOut(BaseModel):
    active: int
    sessions: list[SessionSummary]
    next_cursor: str | None


class HistoryMessageOut(BaseModel):
    role: Literal["user", "assistant"]
    text: str
    images: list[str]


class SessionDetail(BaseModel):
    user_id: str
    state: State
    slots: dict[str, Any]
    history: list[HistoryMessageOut]
    version: int
    updated_at: float
    expires_in: float
    expired: bool
    language: str = Field("", description="the user's reply language; empty: none chosen yet")


class SessionCleared(BaseModel):
    user_id: str
    cleared: bool


class SignedOut(BaseModel):
    user_id: str
    signed_out: bool


class UserSession(BaseModel):
    state: State
    expires_in: float | None
    language: str = Field("", description="the session's reply language; left out until chosen")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


class NotificationOut(BaseModel):
    id: str
    type: str = Field(examples=["order.accepted"])
    order_number: str
    text: str
    created_at: datetime


class NotificationPage(BaseModel):
    """Oldest first; ``next_cursor`` (when more follow) goes in ``after`` for the next page."""

    notifications: list[NotificationOut]
    next_cursor: str | None


class DeadLetterOut(BaseModel):
    id: str
    topic: str
    payload: dict[str, Any]
    attempts: int
    last_error: str
    created_at: datetime
    dead_at: datetime


class DeadLetterPage(BaseModel):
    dead_letters: list[DeadLetterOut]
    next_cursor: str | None


class DeadLetterRetried(BaseModel):
    id: str
    retried: Literal[True]


class WebhookIn(BaseModel):
    """A subscription: where to send which order events."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, examples=["https://hooks.example.com/snap"])
    events: list[str] = Field(min_length=1, max_length=20, examples=[["order.created"], ["*"]])
    description: str = Field("", max_length=500)


class WebhookCreated(BaseModel):
    id: str
    secret: str  # shown once


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str
    created_at: datetime
    disabled: bool
    disabled_at: datetime | None
    failing_since: datetime | None


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class WebhookDeleted(BaseModel):
    id: str
    deleted: Literal[True]


class DeliveryOut(BaseModel):
    delivery_id: str
    message_id: str  # the webhook-id header
    event_type: str
    attempt: int
    status_code: int | None
    error: str | None
    response: str | None  # the start of the answer's body, bounded
    at: datetime
    next_attempt_at: datetime | None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]


class Redelivered(BaseModel):
    delivery_id: str
    message_id: str
    redelivered: Literal[True]
