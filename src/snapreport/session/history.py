"""Conversation history kept in whole turns, with images as references, never bytes.

A *turn* is one user message and the assistant replies to it. History is trimmed by whole
turns, so it can never start with an assistant message (the seed trimmed by message count).

Messages and parts are frozen msgspec structs. Every part is checked when it enters a history
(``History.add``), so whatever a history holds can be stored; a refused message leaves the
history as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final, Literal

import msgspec

from snapreport.errors import InvalidHistory, TextTooLong

Role = Literal["user", "assistant"]
ROLES: frozenset[str] = frozenset({"user", "assistant"})

DEFAULT_MAX_TURNS = 10
DEFAULT_MAX_TEXT_CHARS = 4000
MAX_PARTS_PER_MESSAGE: Final = 32
MAX_MEDIA_KEY_CHARS: Final = 512
MAX_MIME_CHARS: Final = 100
IMAGE_PLACEHOLDER = "[earlier photo, not shown]"

_MAX_INT: Final = 2**53  # sizes and pixel counts; beyond this an "int" is certainly garbage


# gc=False: parts and messages are frozen and hold only strings, ints and tuples of parts, so
# they can never be part of a reference cycle; untracked, they decode faster and cost the
# collector nothing.
class TextPart(msgspec.Struct, frozen=True, tag="text", array_like=True, gc=False):
    """A piece of text in a message."""

    text: str


class ImagePart(msgspec.Struct, frozen=True, tag="image", array_like=True, gc=False):
    """A reference to a stored image: its media key and what we know of it, never its bytes."""

    key: str
    mime: str
    size: int
    width: int
    height: int


Part = TextPart | ImagePart


class Message(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One message: who said it and what, as a tuple of parts."""

    role: Role
    content: tuple[Part, ...]

    @property
    def text(self) -> str:
        """The message's text parts joined by newlines."""
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(p for p in self.content if isinstance(p, ImagePart))


Turn = list[Message]
Content = str | Part | Sequence[Part | str | dict[str, Any]]
# A stored turn stays encoded (msgspec.Raw, a view of the stored bytes) until someone reads it:
# most turns only append, so they never pay for decoding the history they carry.
StoredTurn = Turn | msgspec.Raw
_TURN_DECODER: Final = msgspec.msgpack.Decoder(list[Message])


def make_content(content: Content, *, max_text_chars: int) -> tuple[Part, ...]:
    """Normalise what a caller passes as content into checked parts, refusing anything else.

    Raises ``TextTooLong`` for a text part over ``max_text_chars`` and ``InvalidHistory`` for
    anything that is not text or a well-formed image reference.
    """
    if type(content) is str:  # the common case, first
        return (_check_part(TextPart(content), max_text_chars),)
    value: object = content  # callers pass anything at run time
    raw: Iterable[object]
    if isinstance(value, str | TextPart | ImagePart):
        raw = (value,)
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        raw = value
        if len(value) > MAX_PARTS_PER_MESSAGE:
            raise InvalidHistory(
                f"a message has {len(value)} parts; the limit is {MAX_PARTS_PER_MESSAGE}"
            )
    else:
        raise InvalidHistory(
            f"content must be text, a part or a list of parts, not {_kind(content)}"
        )
    parts = tuple(_check_part(_make_part(item), max_text_chars) for item in raw)
    if not parts:
        raise InvalidHistory("a message needs at least one part")
    return parts


def _make_part(item: object) -> Part:
    if isinstance(item, TextPart | ImagePart):
        return item
    if isinstance(item, str):
        return TextPart(item)
    if isinstance(item, dict):
        return _part_from_dict(item)
    raise InvalidHistory(f"a content part must be text or an image reference, not {_kind(item)}")


_PART_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "text": ("text",),
    "image": ("key", "mime", "size", "width", "height"),
}


def _part_from_dict(item: dict[Any, Any]) -> Part:
    """``{"type": "text", "text": ...}`` or ``{"type": "image", "key": ..., "mime": ...,
    "size": ..., "width": ..., "height": ...}``, exactly those keys."""
    kind = item.get("type")
    fields = _PART_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise InvalidHistory(f"a content part's type must be 'text' or 'image', not {kind!r}")
    keys = set(item) - {"type"}
    if keys != set(fields):
        missing = ", ".join(sorted(set(fields) - keys)) or "none"
        unknown = ", ".join(sorted(map(str, keys - set(fields)))) or "none"
        raise InvalidHistory(
            f"malformed {kind} part: missing fields: {missing}; unknown fields: {unknown}"
        )
    if kind == "text":
        return TextPart(item["text"])
    return ImagePart(*(item[name] for name in fields))


def _check_part(part: Part, max_text_chars: int) -> Part:
    """The part itself if it can be stored; struct constructors do not check field types."""
    if isinstance(part, TextPart):
        text = part.text
        if not isinstance(text, str):
            raise InvalidHistory(f"a text part must hold a string, not {_kind(text)}")
        if len(text) > max_text_chars:
            raise TextTooLong(
                f"a text part has {len(text)} characters; the limit is {max_text_chars}"
            )
        _check_encodable(text, "a text part")
        return part
    for name, limit in (("key", MAX_MEDIA_KEY_CHARS), ("mime", MAX_MIME_CHARS)):
        value = getattr(part, name)
        if not isinstance(value, str) or not value:
            raise InvalidHistory(f"an image part's {name} must be a non-empty string")
        if len(value) > limit:
            raise InvalidHistory(
                f"an image part's {name} has {len(value)} characters; the limit is {limit}"
            )
        _check_encodable(value, f"an image part's {name}")
    for name in ("size", "width", "height"):
        value = getattr(part, name)
        if type(value) is not int or not 0 <= value <= _MAX_INT:
            raise InvalidHistory(
                f"an image part's {name} must be a non-negative integer, not {value!r}"
            )
    return part


def _check_encodable(text: str, what: str) -> None:
    """Refuse a lone surrogate: it cannot be encoded as UTF-8, so it could never be stored."""
    if text.isascii():
        return
    try:
        text.encode()  # a C loop: far cheaper than searching with a regex
    except UnicodeEncodeError:
        raise InvalidHistory(
            f"{what} holds a lone surrogate, which is not valid Unicode text"
        ) from None


def _kind(value: object) -> str:
    return type(value).__name__


class History:
    """The last ``max_turns`` turns of a conversation, oldest first.

    Only ``add`` (and its two shorthands) and ``clear`` change it; what they refuse raises a
    subclass of ``InvalidInput`` and changes nothing.
    """

    __slots__ = ("_turns", "max_text_chars", "max_turns")

    def __init__(
        self,
        turns: Sequence[StoredTurn] | None = None,
        *,
        max_turns: int = DEFAULT_MAX_TURNS,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
    ) -> None:
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self._turns: list[StoredTurn] = list(turns) if turns is not None else []
        self.max_turns = max_turns
        self.max_text_chars = max_text_chars
        self._trim()

    def add(self, role: str, content: Content) -> Message:
        """Append a message. A user message opens a new turn; replies join the open turn."""
        if role not in ROLES:
            raise InvalidHistory(f"role must be 'user' or 'assistant', not {role!r}")
        message = Message(role, make_content(content, max_text_chars=self.max_text_chars))  # type: ignore[arg-type]
        turns = self._turns
        if role == "user":
            turns.append([message])
            self._trim()
        elif not turns:
            raise InvalidHistory("history cannot start with an assistant message")
        else:
            last = turns[-1]
            if type(last) is msgspec.Raw:
                turns[-1] = last = _TURN_DECODER.decode(last)
            last.append(message)
        return message

    def add_user(self, content: Content) -> Message:
        return self.add("user", content)

    def add_assistant(self, content: Content) -> Message:
        return self.add("assistant", content)

    def clear(self) -> None:
        self._turns.clear()

    @property
    def turns(self) -> tuple[tuple[Message, ...], ...]:
        """A read-only view of the turns, oldest first."""
        return tuple(tuple(turn) for turn in self._decoded())

    def messages(self) -> list[Message]:
        """Every message, oldest first (messages are immutable)."""
        return [m for turn in self._decoded() for m in turn]

    def __iter__(self) -> Iterator[Message]:
        return iter(self.messages())

    def __len__(self) -> int:
        """The number of turns."""
        return len(self._turns)

    def __repr__(self) -> str:
        return f"History(turns={len(self._turns)}, max_turns={self.max_turns})"

    def for_vision(
        self, max_images: int = 1, placeholder: str = IMAGE_PLACEHOLDER
    ) -> list[Message]:
        """A copy for a vision model: only the latest ``max_images`` images stay images.

        Older images become a short text placeholder. The list is new and messages and parts
        are immutable, so the copy is as good as deep: nothing a caller does to the result
        changes the history.
        """
        if max_images < 0:
            raise ValueError("max_images cannot be negative")
        out: list[Message] = []
        budget = max_images
        for message in reversed(self.messages()):
            if not any(isinstance(p, ImagePart) for p in message.content):
                out.append(message)
                continue
            parts: list[Part] = []
            for part in reversed(message.content):
                if isinstance(part, ImagePart):
                    if budget > 0:
                        budget -= 1
                        parts.append(part)
                    else:
                        parts.append(TextPart(placeholder))
                else:
                    parts.append(part)
            parts.reverse()
            out.append(Message(message.role, tuple(parts)))
        out.reverse()
        return out

    def raw_turns(self) -> list[StoredTurn]:
        """The stored turns themselves, for encoding (do not change them): decoded ones and,
        where nobody has read them, the encoded ones as they were loaded."""
        return self._turns

    def _decoded(self) -> list[Turn]:
        turns = self._turns
        for i, turn in enumerate(turns):
            if type(turn) is msgspec.Raw:
                turns[i] = _TURN_DECODER.decode(turn)
        return turns  # type: ignore[return-value]

    def _trim(self) -> None:
        turns = self._turns
        excess = len(turns) - self.max_turns
        if excess > 0:
            del turns[:excess]
        # a history may only start with a user message; an encoded turn was checked when it
        # was added, so only one given as messages can need this
        while turns and type(turns[0]) is not msgspec.Raw:
            first = turns[0]
            if first and first[0].role == "user":
                break
            del turns[0]
