"""What channels hand the dialogue (events) and what they get back (an outcome).

Channels (HTTP API, web page, terminal, WeCom) turn an incoming message into an ``Event`` and
render the ``Outcome``'s replies back; they never touch sessions or ports themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snapreport.media.base import CheckedImage
from snapreport.orders.base import Order
from snapreport.session.model import State
from snapreport.vision.base import PreparedImage


@dataclass(frozen=True, slots=True)
class TextEvent:
    """A text. ``verified``: the channel proved who sent it (WeCom's signature, a token, a
    browser session), as a sign-in link (``登录``) requires."""

    text: str
    verified: bool = False


@dataclass(frozen=True, slots=True)
class ImageEvent:
    """An uploaded photo with an optional caption: raw bytes (the media store validates them),
    or bytes the channel already checked with the model's copy made by that same decode."""

    data: bytes | CheckedImage = field(repr=False)
    mime: str | None = None
    caption: str = ""
    preview: PreparedImage | None = field(default=None, repr=False)

    @property
    def raw(self) -> bytes:
        """The photo's bytes, checked or not."""
        return self.data.data if isinstance(self.data, CheckedImage) else bytes(self.data)


@dataclass(frozen=True, slots=True)
class LocationEvent:
    latitude: float
    longitude: float
    label: str = ""


Event = TextEvent | ImageEvent | LocationEvent


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message came from: the channel's name and its id of the message (the HTTP API's
    ``message_id``, WeCom's ``MsgId``). The orders store writes at most one order (or close)
    per origin and user, so a retried message cannot file twice."""

    channel: str
    message_id: str


@dataclass(frozen=True, slots=True)
class Reply:
    """One message back to the user (``type`` is "text" for now)."""

    text: str
    type: str = "text"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to one event: replies, the state after it, the order it created or closed
    (if any), the answers the last reply offers (a channel may show them as buttons) and the
    language the replies are in."""

    replies: tuple[Reply, ...]
    state: State
    order: Order | None = None
    choices: tuple[str, ...] = ()
    language: str = ""
