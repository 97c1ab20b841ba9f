"""The session record: state, pending slots, history, version and timestamps, as ONE unit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, get_args

import msgspec

from snapreport.errors import InvalidSlotValue, InvalidState, InvalidUserId
from snapreport.session.history import (
    DEFAULT_MAX_TEXT_CHARS,
    DEFAULT_MAX_TURNS,
    History,
    Message,
    Turn,
)

State = Literal["idle", "waiting_location", "waiting_confirm", "waiting_close_photo"]
STATES: Final[tuple[State, ...]] = get_args(State)

MAX_USER_ID_CHARS: Final = 64
MAX_SLOT_CHARS: Final = 4000
_USER_ID = re.compile(r"[A-Za-z0-9_.@:\-]{1,64}")


def check_user_id(user_id: object) -> str:
    """Return ``user_id`` if it is 1..64 of ``[A-Za-z0-9_.@:-]``, else raise InvalidUserId."""
    if not isinstance(user_id, str):
        raise InvalidUserId(f"user id must be a string, not {type(user_id).__name__}")
    if not user_id:
        raise InvalidUserId("user id is empty")
    if len(user_id) > MAX_USER_ID_CHARS:
        raise InvalidUserId(
            f"user id has {len(user_id)} characters; the limit is {MAX_USER_ID_CHARS}"
        )
    if not _USER_ID.fullmatch(user_id):
        raise InvalidUserId("user id may only use letters, digits and _ . @ : -")
    return user_id


class Slots(msgspec.Struct, omit_defaults=True):
    """What a pending report or close carries between messages."""

    image_key: str = ""
    image_mime: str = ""
    analysis: str = ""
    alarm_type: str = ""
    confidence: float | None = None
    location: str = ""
    order_id: str = ""
    alarm_id: str = ""
    close_image_key: str = ""
    close_attempts: int = 0
    choices: list[str] = msgspec.field(default_factory=list)

    def copy(self) -> Slots:
        return msgspec.structs.replace(self, choices=list(self.choices))


class _Record(msgspec.Struct, array_like=True):
    """The stored form of a session (compact: positional MessagePack)."""

    state: State
    slots: Slots
    turns: list[Turn]
    version: int
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ExpiredSession:
    """What a session held when it expired while not idle, so the assistant can say so."""

    state: State
    slots: Slots
    expired_at: float


class Session:
    """One user's conversation: the state machine's state, its slots, and the recent history."""

    __slots__ = (
        "created_at",
        "expired_from",
        "history",
        "slots",
        "state",
        "updated_at",
        "user_id",
        "version",
    )

    def __init__(
        self,
        user_id: str,
        *,
        state: State = "idle",
        slots: Slots | None = None,
        history: History | None = None,
        version: int = 0,
        created_at: float = 0.0,
        updated_at: float = 0.0,
    ) -> None:
        self.user_id = user_id
        self.state: State = state
        self.slots = slots if slots is not None else Slots()
        self.history = history if history is not None else History()
        self.version = version
        self.created_at = created_at
        self.updated_at = updated_at
        self.expired_from: ExpiredSession | None = None

    def reset(self) -> None:
        """Back to ``idle`` with empty slots; the history is kept."""
        self.state = "idle"
        self.slots = Slots()

    def clear(self) -> None:
        """Back to ``idle`` with empty slots and no history."""
        self.reset()
        self.history.clear()

    def expires_at(self, ttl_seconds: float) -> float:
        return self.updated_at + ttl_seconds

    def is_expired(self, now: float, ttl_seconds: float) -> bool:
        return now >= self.updated_at + ttl_seconds

    def history_for_vision(self, max_images: int = 1) -> list[Message]:
        """A deep copy of the history that keeps only the latest ``max_images`` images inline."""
        return self.history.for_vision(max_images)

    def validate(self) -> None:
        """Raise a specific error if the session cannot be stored as it is."""
        if self.state not in STATES:
            raise InvalidState(f"unknown state {self.state!r}; expected one of {', '.join(STATES)}")
        if not isinstance(self.slots, Slots):
            raise InvalidSlotValue("slots must be a Slots record")
        for name in self.slots.__struct_fields__:
            value = getattr(self.slots, name)
            if isinstance(value, str) and len(value) > MAX_SLOT_CHARS:
                raise InvalidSlotValue(
                    f"slot {name!r} has {len(value)} characters; the limit is {MAX_SLOT_CHARS}"
                )
        try:
            msgspec.convert(msgspec.structs.asdict(self.slots), Slots)
        except msgspec.ValidationError as exc:
            raise InvalidSlotValue(f"a slot value cannot be stored: {exc}") from exc

    def __repr__(self) -> str:
        return (
            f"Session(user_id={self.user_id!r}, state={self.state!r}, "
            f"turns={len(self.history)}, version={self.version})"
        )


class SessionCodec:
    """Encodes sessions to compact bytes and back (MessagePack via msgspec)."""

    def __init__(
        self,
        *,
        max_turns: int = DEFAULT_MAX_TURNS,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
    ) -> None:
        self.max_turns = max_turns
        self.max_text_chars = max_text_chars
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(_Record)

    def encode(self, session: Session) -> bytes:
        record = _Record(
            session.state,
            session.slots,
            session.history.raw_turns(),
            session.version,
            session.created_at,
            session.updated_at,
        )
        return self._encoder.encode(record)

    def decode(self, user_id: str, blob: bytes) -> Session:
        record = self._decoder.decode(blob)
        return Session(
            user_id,
            state=record.state,
            slots=record.slots,
            history=History(
                record.turns, max_turns=self.max_turns, max_text_chars=self.max_text_chars
            ),
            version=record.version,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )

    def new(self, user_id: str, now: float) -> Session:
        return Session(
            user_id,
            history=History(max_turns=self.max_turns, max_text_chars=self.max_text_chars),
            created_at=now,
            updated_at=now,
        )
