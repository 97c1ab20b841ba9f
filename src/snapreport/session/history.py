"""Conversation history kept in whole turns, with images as references, never bytes.

A *turn* is one user message and the assistant replies to it. History is trimmed by whole
turns, so it can never start with an assistant message (the seed trimmed by message count).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import msgspec

from snapreport.errors import InvalidHistory, TextTooLong

Role = Literal["user", "assistant"]
ROLES: frozenset[str] = frozenset({"user", "assistant"})

DEFAULT_MAX_TURNS = 10
DEFAULT_MAX_TEXT_CHARS = 4000
IMAGE_PLACEHOLDER = "[earlier photo, not shown]"


class TextPart(msgspec.Struct, frozen=True, tag="text", array_like=True):
    """A piece of text in a message."""

    text: str


class ImagePart(msgspec.Struct, frozen=True, tag="image", array_like=True):
    """A reference to a stored image: its media key and what we know of it, never its bytes."""

    key: str
    mime: str
    size: int
    width: int
    height: int


Part = TextPart | ImagePart


class Message(msgspec.Struct, frozen=True, array_like=True):
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


def make_content(content: Content, *, max_text_chars: int) -> tuple[Part, ...]:
    """Normalise what a caller passes as content into parts, refusing anything malformed."""
    raw: Iterable[object]
    if isinstance(content, str | TextPart | ImagePart):
        raw = (content,)
    elif isinstance(content, Sequence):
        raw = content
    else:
        raise InvalidHistory(f"content must be text, a part or a list of parts, not {_kind(content)}")
    parts: list[Part] = []
    for item in raw:
        part = _make_part(item)
        if isinstance(part, TextPart) and len(part.text) > max_text_chars:
            raise TextTooLong(
                f"a text part has {len(part.text)} characters; the limit is {max_text_chars}"
            )
        parts.append(part)
    if not parts:
        raise InvalidHistory("a message needs at least one part")
    return tuple(parts)


def _make_part(item: object) -> Part:
    if isinstance(item, TextPart | ImagePart):
        return item
    if isinstance(item, str):
        return TextPart(item)
    if isinstance(item, dict):
        try:
            return msgspec.convert(item, Part)
        except msgspec.ValidationError as exc:
            raise InvalidHistory(f"malformed content part {sorted(item)}: {exc}") from exc
    raise InvalidHistory(f"a content part must be text or an image reference, not {_kind(item)}")


def _kind(value: object) -> str:
    return type(value).__name__


class History:
    """The last ``max_turns`` turns of a conversation."""

    __slots__ = ("_turns", "max_text_chars", "max_turns")

    def __init__(
        self,
        turns: list[Turn] | None = None,
        *,
        max_turns: int = DEFAULT_MAX_TURNS,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
    ) -> None:
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self._turns: list[Turn] = turns if turns is not None else []
        self.max_turns = max_turns
        self.max_text_chars = max_text_chars
        self._trim()

    def add(self, role: str, content: Content) -> Message:
        """Append a message. A user message opens a new turn; replies join the open turn."""
        if role not in ROLES:
            raise InvalidHistory(f"role must be 'user' or 'assistant', not {role!r}")
        message = Message(role, make_content(content, max_text_chars=self.max_text_chars))  # type: ignore[arg-type]
        if role == "user":
            self._turns.append([message])
            self._trim()
        elif not self._turns:
            raise InvalidHistory("history cannot start with an assistant message")
        else:
            self._turns[-1].append(message)
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
        return tuple(tuple(turn) for turn in self._turns)

    def messages(self) -> list[Message]:
        """Every message, oldest first (messages are immutable)."""
        return [m for turn in self._turns for m in turn]

    def __iter__(self) -> Iterator[Message]:
        return iter(self.messages())

    def __len__(self) -> int:
        """The number of turns."""
        return len(self._turns)

    def for_vision(
        self, max_images: int = 1, placeholder: str = IMAGE_PLACEHOLDER
    ) -> list[Message]:
        """A copy for a vision model: only the latest ``max_images`` images stay images.

        Older images become a short text placeholder. Messages are immutable and the list is
        new, so nothing a caller does to the result changes the history.
        """
        out: list[Message] = []
        budget = max_images
        for message in reversed(self.messages()):
            if not message.images:
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

    def raw_turns(self) -> list[Turn]:
        """The stored turns themselves, for encoding."""
        return self._turns

    def _trim(self) -> None:
        excess = len(self._turns) - self.max_turns
        if excess > 0:
            del self._turns[:excess]
        # a stored history may only start with a user message
        while self._turns and (not self._turns[0] or self._turns[0][0].role != "user"):
            del self._turns[0]
