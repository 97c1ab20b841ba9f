"""The session record: user ids, states, slots, reset/clear, the storage codec."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest

from snapreport.errors import InvalidHistory, InvalidSlotValue, InvalidState, InvalidUserId
from snapreport.session.history import IMAGE_PLACEHOLDER, History, ImagePart, TextPart
from snapreport.session.model import (
    MAX_CHOICES,
    MAX_SLOT_CHARS,
    MAX_USER_ID_CHARS,
    STATES,
    Session,
    SessionCodec,
    Slots,
    check_user_id,
)

PHOTO = ImagePart("media/a.jpg", "image/jpeg", 10, 4, 3)


def test_the_seed_states_are_all_there() -> None:
    assert set(STATES) == {"idle", "waiting_location", "waiting_confirm", "waiting_close_photo"}


def test_the_seed_pending_slots_are_all_there() -> None:
    fields = set(Slots.__struct_fields__)
    assert {"image_key", "analysis", "alarm_type", "order_id", "alarm_id"} <= fields


# -- user ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("user_id", ["a", "alice", "Zhang.San-01", "u_1@corp:wecom", "x" * 64])
def test_good_user_ids_pass(user_id: str) -> None:
    assert check_user_id(user_id) == user_id


@pytest.mark.parametrize(
    ("user_id", "message"),
    [
        ("", "empty"),
        ("x" * (MAX_USER_ID_CHARS + 1), "65 characters; the limit is 64"),
        ("two words", "may only use"),
        ("a/b", "may only use"),
        ("张三", "may only use"),
        ("new\nline", "may only use"),
        (None, "must be a string"),
        (42, "must be a string"),
        (b"alice", "must be a string"),
    ],
)
def test_bad_user_ids_are_refused(user_id: Any, message: str) -> None:
    with pytest.raises(InvalidUserId, match=message):
        check_user_id(user_id)


# -- reset and clear ----------------------------------------------------------------------------


def pending_session() -> Session:
    session = Session("alice")
    session.history.add_user([PHOTO, "blocked exit"])
    session.history.add_assistant("where is it?")
    session.state = "waiting_location"
    session.slots.image_key = PHOTO.key
    session.slots.analysis = "a blocked fire exit"
    session.slots.alarm_type = "fire_exit"
    session.slots.order_id = "20260101-0001"
    session.slots.alarm_id = "A-1"
    return session


def test_reset_keeps_the_history_as_the_seed_did() -> None:
    session = pending_session()
    session.reset()
    assert session.state == "idle"
    assert session.slots == Slots()
    assert len(session.history) == 1


def test_clear_forgets_the_history_too() -> None:
    session = pending_session()
    session.clear()
    assert session.state == "idle"
    assert session.slots == Slots()
    assert len(session.history) == 0


def test_slots_copy_is_independent() -> None:
    slots = Slots(choices=["a", "b"])
    copy = slots.copy()
    copy.choices.append("c")
    assert slots.choices == ["a", "b"]


def test_history_for_vision_goes_through_the_session() -> None:
    session = pending_session()
    session.history.add_user([ImagePart("media/b.jpg", "image/jpeg", 1, 1, 1), "another"])
    view = session.history_for_vision()
    images = [p for m in view for p in m.content if isinstance(p, ImagePart)]
    assert [p.key for p in images] == ["media/b.jpg"]
    assert TextPart(IMAGE_PLACEHOLDER) in view[0].content


# -- validation ---------------------------------------------------------------------------------


def test_a_well_formed_session_validates() -> None:
    session = pending_session()
    session.slots.confidence = 1  # an int is a fine float
    session.slots.close_attempts = 2
    session.slots.choices = ["fire_exit", "water_leak"]
    session.slots.location = "x" * MAX_SLOT_CHARS
    session.validate()


@pytest.mark.parametrize("state", ["bogus", "", "IDLE", None, 3, ["idle"]])
def test_an_unknown_state_is_refused(state: Any) -> None:
    session = pending_session()
    session.state = state
    with pytest.raises(InvalidState, match="unknown state"):
        session.validate()


BAD_SLOTS: list[tuple[str, Any, str]] = [
    ("image_key", 123, "Expected `str`, got `int` - at `\\$.image_key`"),
    ("analysis", "x" * (MAX_SLOT_CHARS + 1), "length <= 4000"),
    ("alarm_type", None, "Expected `str`, got `None`"),
    ("confidence", "0.9", "Expected `float \\| null`, got `str`"),
    ("close_attempts", True, "Expected `int`, got `bool`"),
    ("close_attempts", 2**70, "cannot be stored"),
    ("choices", ["ok", 5], "Expected `str`, got `int`"),
    ("choices", ["c"] * (MAX_CHOICES + 1), f"length <= {MAX_CHOICES}"),
    ("location", "lone \ud800 surrogate", "cannot be stored"),
    ("order_id", object(), "cannot be stored"),
    ("alarm_id", b"bytes", "Expected `str`, got `bytes`"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD_SLOTS)
def test_slot_values_that_cannot_be_stored_are_refused(name: str, value: Any, message: str) -> None:
    session = pending_session()
    setattr(session.slots, name, value)
    with pytest.raises(InvalidSlotValue, match=message):
        session.validate()


def test_slots_must_be_a_slots_record() -> None:
    session = pending_session()
    session.slots = {"analysis": "x"}  # type: ignore[assignment]
    with pytest.raises(InvalidSlotValue, match="must be a Slots record"):
        session.validate()


def test_history_must_be_a_history() -> None:
    session = pending_session()
    session.history = [{"role": "user", "content": "x"}]  # type: ignore[assignment]
    with pytest.raises(InvalidHistory, match="must be a History"):
        session.validate()


# -- codec ----------------------------------------------------------------------------------------


def test_the_codec_round_trips_everything() -> None:
    codec = SessionCodec()
    session = pending_session()
    session.slots.confidence = 0.87
    session.slots.choices = ["a", "b"]
    session.version, session.created_at, session.updated_at = 7, 100.5, 200.25
    back = codec.decode("alice", codec.encode(session))
    assert back.user_id == "alice"
    assert back.state == session.state
    assert back.slots == session.slots
    assert back.history.turns == session.history.turns
    assert (back.version, back.created_at, back.updated_at) == (7, 100.5, 200.25)
    assert back.expired_from is None


def test_encoding_a_next_version_leaves_the_session_alone() -> None:
    codec = SessionCodec()
    session = Session("bob", version=3, updated_at=10.0)
    blob = codec.encode(session, version=4, updated_at=20.0)
    assert (session.version, session.updated_at) == (3, 10.0)
    back = codec.decode("bob", blob)
    assert (back.version, back.updated_at) == (4, 20.0)


def test_an_idle_session_is_a_few_dozen_bytes() -> None:
    codec = SessionCodec()
    blob = codec.encode(codec.new("alice", 1_700_000_000.0))
    assert len(blob) < 40


def test_images_are_stored_as_references_never_bytes() -> None:
    codec = SessionCodec()
    session = Session("alice")
    session.history.add_user(ImagePart("media/k.jpg", "image/jpeg", 5_000_000, 4000, 3000))
    assert len(codec.encode(session)) < 100  # a 5 MB photo costs its key and four numbers


def test_decoding_applies_the_codec_limits() -> None:
    session = Session("alice", history=History(max_turns=10))
    for i in range(10):
        session.history.add_user(f"q{i}")
    small = SessionCodec(max_turns=3)
    back = small.decode("alice", SessionCodec().encode(session))
    assert [t[0].text for t in back.history.turns] == ["q7", "q8", "q9"]
    assert back.history.max_turns == 3


@pytest.mark.parametrize(
    "blob", [b"", b"\x00", b"not msgpack at all", msgspec.msgpack.encode([1, 2])]
)
def test_a_blob_that_is_not_a_session_raises_a_decode_error(blob: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        SessionCodec().decode("alice", blob)


def test_a_new_session_is_idle_and_empty() -> None:
    session = SessionCodec(max_turns=4).new("carol", 5.0)
    assert (session.state, session.version, session.created_at, session.updated_at) == (
        "idle",
        0,
        5.0,
        5.0,
    )
    assert session.slots == Slots()
    assert session.history.max_turns == 4
    assert "carol" in repr(session)


def test_expired_at_is_a_plain_time() -> None:
    # a timestamp, never a datetime: the stores compare floats
    assert not isinstance(Session("a").updated_at, dt.datetime)


def stored_session(turns: int) -> Session:
    codec = SessionCodec()
    session = Session("alice")
    for i in range(turns):
        session.history.add_user(f"q{i}")
        session.history.add_assistant(f"a{i}")
    return codec.decode("alice", codec.encode(session))


def test_a_history_nobody_read_is_stored_again_byte_for_byte() -> None:
    codec = SessionCodec()
    session = stored_session(4)
    again = codec.encode(session)
    assert codec.encode(codec.decode("alice", again)) == again
    assert [m.text for m in codec.decode("alice", again).history] == [
        t for i in range(4) for t in (f"q{i}", f"a{i}")
    ]


def test_a_reply_joins_a_stored_turn() -> None:
    codec = SessionCodec()
    session = stored_session(2)
    session.history.add_assistant("one more reply")
    back = codec.decode("alice", codec.encode(session))
    assert [m.text for m in back.history.turns[-1]] == ["q1", "a1", "one more reply"]


def test_stored_turns_are_trimmed_like_any_others() -> None:
    codec = SessionCodec()
    session = stored_session(10)
    for i in range(3):
        session.history.add_user(f"new{i}")
    assert len(session.history) == 10
    back = codec.decode("alice", codec.encode(session))
    assert [t[0].text for t in back.history.turns] == [
        *(f"q{i}" for i in range(3, 10)),
        "new0",
        "new1",
        "new2",
    ]
