"""WeCom callback XML: the encrypted envelope and the messages inside it, as typed values.

Parsing goes through defusedxml and refuses bodies over a size cap, so a hostile body cannot
make us expand or allocate much before its signature is checked. A body that declares a
DOCTYPE (an internal subset, or an external DTD that a lenient parser might fetch) is refused
outright: WeCom never sends one.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException, DTDForbidden

from snapreport.errors import InvalidInput

MAX_XML_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Envelope:
    """The outer POST body: who it is for and the encrypted message."""

    to_user_name: str
    agent_id: str
    encrypt: str


@dataclass(frozen=True, slots=True)
class Header:
    """Fields every decrypted message or event carries."""

    to_user_name: str
    from_user_name: str
    create_time: int
    msg_type: str
    agent_id: str
    msg_id: str

    @property
    def dedupe_parts(self) -> tuple[str, ...]:
        """What identifies a push: a message by its sender and MsgId, an event (which has no
        MsgId) by its sender and time. Keys are built from these with ``key_of``."""
        if self.msg_id:
            return ("msg", self.from_user_name, self.msg_id)
        return ("event", self.from_user_name, str(self.create_time))


@dataclass(frozen=True, slots=True)
class TextMessage:
    header: Header
    content: str


@dataclass(frozen=True, slots=True)
class ImageMessage:
    header: Header
    media_id: str
    pic_url: str


@dataclass(frozen=True, slots=True)
class LocationMessage:
    header: Header
    latitude: float
    longitude: float
    scale: int
    label: str


@dataclass(frozen=True, slots=True)
class EventMessage:
    """A notification such as entering the app or a menu click; not a user message."""

    header: Header
    event: str
    event_key: str


@dataclass(frozen=True, slots=True)
class OtherMessage:
    """A message type we do not handle yet (voice, video, file, link...)."""

    header: Header


Message = TextMessage | ImageMessage | LocationMessage | EventMessage | OtherMessage


def _root(xml: bytes | str) -> Element:
    size = len(xml.encode() if isinstance(xml, str) else xml)
    if size > MAX_XML_BYTES:
        raise InvalidInput(f"the XML body has {size} bytes; the limit is {MAX_XML_BYTES}")
    try:
        root = SafeET.fromstring(xml, forbid_dtd=True)
    except DTDForbidden:
        raise InvalidInput("the XML body declares a DOCTYPE; WeCom never sends one") from None
    except (ParseError, DefusedXmlException) as exc:
        raise InvalidInput(f"the XML body cannot be parsed: {type(exc).__name__}") from exc
    if root.tag != "xml":
        raise InvalidInput("the XML body's root element is not <xml>")
    return root


def _text(root: Element, tag: str, *, required: bool = False) -> str:
    node = root.find(tag)
    value = (node.text or "") if node is not None else ""
    if required and not value:
        raise InvalidInput(f"the XML body has no {tag}")
    return value.strip() if tag != "Content" else value


def _number(root: Element, tag: str, kind: type[int] | type[float]) -> float:
    raw = _text(root, tag, required=True)
    try:
        return kind(raw)
    except ValueError as exc:
        raise InvalidInput(f"{tag} is not a number") from exc


def parse_envelope(body: bytes) -> Envelope:
    """The encrypted POST body; ``InvalidInput`` when it is malformed or too large."""
    root = _root(body)
    return Envelope(
        to_user_name=_text(root, "ToUserName"),
        agent_id=_text(root, "AgentID"),
        encrypt=_text(root, "Encrypt", required=True),
    )


def parse_message(xml: str) -> Message:
    """A decrypted message, typed by its MsgType; ``InvalidInput`` when fields are missing."""
    root = _root(xml)
    header = Header(
        to_user_name=_text(root, "ToUserName"),
        from_user_name=_text(root, "FromUserName", required=True),
        create_time=int(_number(root, "CreateTime", int)),
        msg_type=_text(root, "MsgType", required=True),
        agent_id=_text(root, "AgentID"),
        msg_id=_text(root, "MsgId"),
    )
    if header.msg_type == "text":
        return TextMessage(header, _text(root, "Content"))
    if header.msg_type == "image":
        return ImageMessage(header, _text(root, "MediaId", required=True), _text(root, "PicUrl"))
    if header.msg_type == "location":
        scale = _text(root, "Scale")
        latitude = _number(root, "Location_X", float)
        longitude = _number(root, "Location_Y", float)
        if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
            raise InvalidInput("Location_X/Location_Y are not a latitude and longitude")
        return LocationMessage(
            header,
            latitude=latitude,
            longitude=longitude,
            scale=int(scale) if scale.isdigit() else 0,
            label=_text(root, "Label"),
        )
    if header.msg_type == "event":
        return EventMessage(header, _text(root, "Event"), _text(root, "EventKey"))
    return OtherMessage(header)
