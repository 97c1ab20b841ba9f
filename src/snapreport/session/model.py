"""The session record: state, pending slots, history, version and timestamps, as ONE unit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Final, Literal, get_args

import msgspec

from snapreport.errors import InvalidHistory, InvalidSlotValue, InvalidState, InvalidUserId
from snapreport.session.history import (
    DEFAULT_MAX_TEXT_CHARS,
    DEFAULT_MAX_TURNS,
    History,
    Message,
)

State = Literal["idle", "waiting_location", "waiting_confirm", "waiting_close_photo"]
STATES: Final[tuple[State, ...]] = get_args(State)
_STATE_SET: Final[frozenset[str]] = frozenset(STATES)

MAX_USER_ID_CHARS: Final = 64
MAX_SLOT_CHARS: Final = 4000
MAX_CHOICES: Final = 100
MAX_LANGUAGE_CHARS: Final = 16
MAX_MORE_IMAGES: Final = 3  # a report has at most 4 photos: ``image_key`` and these
# the ONE user-id rule: the API's schemas and the web page (given it by the server) use it too
USER_ID_PATTERN: Final = rf"^[A-Za-z0-9_.@:-]{{1,{MAX_USER_ID_CHARS}}}$"
_USER_ID = re.compile(USER_ID_PATTERN)


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


SlotText = Annotated[str, msgspec.Meta(max_length=MAX_SLOT_CHARS)]


class Slots(msgspec.Struct, omit_defaults=True):
    """What a pending report or close carries between messages.

    The annotations are the storage rules (``Session.validate`` applies them before a commit):
    texts of at most ``MAX_SLOT_CHARS`` characters, at most ``MAX_CHOICES`` choices.
    """

    image_key: SlotText = ""
    image_mime: SlotText = ""
    analysis: SlotText = ""
    alarm_type: SlotText = ""
    confidence: float | None = None
    location: SlotText = ""
    order_id: SlotText = ""
    alarm_id: SlotText = ""
    close_image_key: SlotText = ""
    close_attempts: int = 0
    # what the last reply asked, when it was more than the state says ("type": which type)
    awaiting: SlotText = ""
    choices: Annotated[list[SlotText], msgspec.Meta(max_length=MAX_CHOICES)] = msgspec.field(
        default_factory=list
    )
    # several photos: those after ``image_key``, and whether the next photo adds one
    more_images: Annotated[list[SlotText], msgspec.Meta(max_length=MAX_MORE_IMAGES)] = (
        msgspec.field(default_factory=list)
    )
    add_photo: bool = False
    # where the coordinates of the location came from (a location event, or a photo's GPS the
    # user accepted); a location typed as text clears them
    latitude: float | None = None
    longitude: float | None = None
    # a photo's EXIF GPS, offered as the location until the user answers
    gps_latitude: float | None = None
    gps_longitude: float | None = None
    # the duplicate offered at confirmation, and what the report looked like when it was checked
    duplicate_of: SlotText = ""
    duplicate_checked: SlotText = ""

    def copy(self) -> Slots:
        return msgspec.structs.replace(
            self, choices=list(self.choices), more_images=list(self.more_images)
        )


# Checking slots by a round trip through the storage format applies exactly the rules a decode
# would (types, lengths, integer range, valid Unicode), at a fraction of a microsecond.
_SLOTS_ENCODER: Final = msgspec.msgpack.Encoder()
_SLOTS_DECODER: Final = msgspec.msgpack.Decoder(Slots)


class _Record(msgspec.Struct, array_like=True, gc=False):
    """The stored form of a session (compact: positional MessagePack)."""

    state: State
    slots: Slots
    turns: list[msgspec.Raw]  # each turn decoded only when read (see history.StoredTurn)
    version: int
    created_at: float
    updated_at: float
    # added later: a record stored before it has no such element and decodes with ""
    language: str = ""


@dataclass(frozen=True, slots=True)
class ExpiredSession:
    """What a session held when it expired while not idle, so the assistant can say so."""

    state: State
    slots: Slots
    expired_at: float


class Session:
    """One user's conversation: the state machine's state, its slots, and the recent history.

        ``version`` counts commits; ``created_at`` and ``updated_at`` are clock times (seconds);
        ``language`` is the reply language the user chose ("" until one was chosen or hinted);
    ``expired_from`` is set by the engine when this turn found the previous session expired
        while a report or close was pending (it is never stored).
    """

    __slots__ = (
        "created_at",
        "expired_from",
        "history",
        "language",
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
        language: str = "",
    ) -> None:
        self.user_id = user_id
        self.language = language
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

    def history_for_vision(self, max_images: int = 1) -> list[Message]:
        """A deep copy of the history that keeps only the latest ``max_images`` images inline."""
        return self.history.for_vision(max_images)

    def validate(self) -> None:
        """Raise a specific error if the session cannot be stored as it is.

        ``InvalidState`` for an unknown state, ``InvalidSlotValue`` for a slot of the wrong
        type, too long, or not encodable, ``InvalidHistory`` if ``history`` is not a History.
        """
        if not isinstance(self.state, str) or self.state not in _STATE_SET:
            raise InvalidState(f"unknown state {self.state!r}; expected one of {', '.join(STATES)}")
        if not isinstance(self.language, str) or len(self.language) > MAX_LANGUAGE_CHARS:
            raise InvalidSlotValue(f"language must be a short string, not {self.language!r}")
        if not isinstance(self.history, History):
            raise InvalidHistory(f"history must be a History, not {type(self.history).__name__}")
        slots = self.slots
        if type(slots) is not Slots:
            raise InvalidSlotValue(f"slots must be a Slots record, not {type(slots).__name__}")
        try:
            _SLOTS_DECODER.decode(_SLOTS_ENCODER.encode(slots))
        except msgspec.ValidationError as exc:
            raise InvalidSlotValue(f"a slot value cannot be stored: {exc}") from None
        except (msgspec.EncodeError, TypeError, ValueError, OverflowError) as exc:
            # TypeError: an unsupported object; UnicodeEncodeError (a ValueError): a lone
            # surrogate; OverflowError: an integer beyond 64 bits
            raise InvalidSlotValue(f"a slot value cannot be stored: {exc}") from None

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

    def encode(
        self,
        session: Session,
        *,
        version: int | None = None,
        updated_at: float | None = None,
    ) -> bytes:
        """The session as stored; ``version`` and ``updated_at`` replace the session's own
        (a commit encodes the next version without touching the session before it lands)."""
        record = _Record(
            session.state,
            session.slots,
            session.history.raw_turns(),  # type: ignore[arg-type]  # Raw or decoded: both encode
            session.version if version is None else version,
            session.created_at,
            session.updated_at if updated_at is None else updated_at,
            session.language,
        )
        return self._encoder.encode(record)

    def decode(self, user_id: str, blob: bytes) -> Session:
        """The session a blob holds; raises ``msgspec.DecodeError`` if it is not one."""
        record = self._decoder.decode(blob)
        history = History(
            record.turns, max_turns=self.max_turns, max_text_chars=self.max_text_chars
        )
        session = Session(
            user_id,
            state=record.state,
            slots=record.slots,
            history=history,
            language=record.language,
        )
        session.version = record.version
        session.created_at = record.created_at
        session.updated_at = record.updated_at
        return session

    def new(self, user_id: str, now: float) -> Session:
        return Session(
            user_id,
            history=History(max_turns=self.max_turns, max_text_chars=self.max_text_chars),
            created_at=now,
            updated_at=now,
        )
