"""History: whole turns, image references, checked content, the vision view."""

from __future__ import annotations

from typing import Any

import pytest

from snapreport.errors import InvalidHistory, InvalidInput, TextTooLong
from snapreport.session.history import (
    IMAGE_PLACEHOLDER,
    MAX_PARTS_PER_MESSAGE,
    History,
    ImagePart,
    Message,
    TextPart,
    make_content,
)

PHOTO = ImagePart("media/2026/11/a.jpg", "image/jpeg", 120_000, 1600, 1200)


def photo(n: int) -> ImagePart:
    return ImagePart(f"media/p{n}.jpg", "image/jpeg", 1000 + n, 800, 600)


def texts(history: History) -> list[list[str]]:
    return [[m.text for m in turn] for turn in history.turns]


# -- turns ----------------------------------------------------------------------------------


def test_a_user_message_opens_a_turn_and_replies_join_it() -> None:
    history = History()
    history.add_user("photo of a blocked exit")
    history.add_assistant("where is it?")
    history.add_assistant("(send a location)")
    history.add_user("gate 2")
    assert texts(history) == [
        ["photo of a blocked exit", "where is it?", "(send a location)"],
        ["gate 2"],
    ]
    assert len(history) == 2
    assert [m.role for m in history] == ["user", "assistant", "assistant", "user"]
    assert history.messages() == list(history)


def test_history_keeps_the_last_max_turns_whole_turns() -> None:
    history = History(max_turns=10)
    for i in range(25):
        history.add_user(f"q{i}")
        for j in range(i % 3):  # turns of different lengths
            history.add_assistant(f"a{i}.{j}")
    assert len(history) == 10
    assert [turn[0].text for turn in history.turns] == [f"q{i}" for i in range(15, 25)]
    assert history.turns[0][0].role == "user"
    assert [m.text for m in history.turns[-2]] == ["q23", "a23.0", "a23.1"]


def test_the_seed_trimming_bug_cannot_happen() -> None:
    """The seed kept the last 20 messages, so three replies in a turn made it start mid-turn."""
    history = History(max_turns=2)
    history.add_user("one")
    history.add_assistant("r1")
    history.add_assistant("r2")
    history.add_assistant("r3")
    history.add_user("two")
    history.add_user("three")
    assert texts(history) == [["two"], ["three"]]
    assert history.messages()[0].role == "user"


def test_history_cannot_start_with_an_assistant_message() -> None:
    history = History()
    with pytest.raises(InvalidHistory, match="cannot start with an assistant"):
        history.add_assistant("hello")
    assert len(history) == 0


def test_a_stored_history_that_starts_badly_is_repaired() -> None:
    reply = Message("assistant", (TextPart("orphan"),))
    question = Message("user", (TextPart("q"),))
    history = History([[reply], [], [question, reply]], max_turns=5)
    assert texts(history) == [["q", "orphan"]]


def test_clear_and_max_turns_bounds() -> None:
    history = History(max_turns=1)
    history.add_user("a")
    history.add_user("b")
    assert texts(history) == [["b"]]
    history.clear()
    assert len(history) == 0
    with pytest.raises(ValueError, match="max_turns"):
        History(max_turns=0)


def test_turns_is_a_read_only_view() -> None:
    history = History()
    history.add_user("a")
    view = history.turns
    assert isinstance(view, tuple)
    assert isinstance(view[0], tuple)
    assert "History(turns=1" in repr(history)


# -- content ----------------------------------------------------------------------------------


def test_content_may_be_text_parts_or_a_list_of_both() -> None:
    history = History()
    message = history.add_user([PHOTO, "a caption"])
    assert message.content == (PHOTO, TextPart("a caption"))
    assert message.text == "a caption"
    assert message.images == (PHOTO,)
    assert history.add_assistant(TextPart("ok")).content == (TextPart("ok"),)
    assert history.add_user(PHOTO).images == (PHOTO,)


def test_content_parts_may_be_plain_dicts() -> None:
    history = History()
    message = history.add_user(
        [
            {
                "type": "image",
                "key": "k.jpg",
                "mime": "image/jpeg",
                "size": 3,
                "width": 2,
                "height": 1,
            },
            {"type": "text", "text": "what is this?"},
        ]
    )
    assert message.content == (ImagePart("k.jpg", "image/jpeg", 3, 2, 1), TextPart("what is this?"))


def test_a_text_part_at_the_cap_is_kept_and_one_over_it_is_refused() -> None:
    history = History(max_text_chars=10)
    history.add_user("x" * 10)
    with pytest.raises(TextTooLong, match="11 characters; the limit is 10"):
        history.add_user("x" * 11)
    with pytest.raises(TextTooLong):
        history.add_user([PHOTO, TextPart("y" * 11)])
    assert texts(history) == [["x" * 10]]


def test_the_default_text_cap_is_4000_characters() -> None:
    history = History()
    history.add_user("字" * 4000)
    with pytest.raises(TextTooLong):
        history.add_user("字" * 4001)


BAD_CONTENT: list[tuple[Any, str]] = [
    (None, "content must be"),
    (42, "content must be"),
    (b"bytes are not text", "content must be"),
    ([], "at least one part"),
    ([3.5], "must be text or an image reference"),
    ([b"raw image bytes"], "must be text or an image reference"),
    ([{"type": "video", "url": "x"}], "type must be 'text' or 'image'"),
    ([{"text": "no type"}], "type must be 'text' or 'image'"),
    ([{"type": "text"}], "missing fields: text"),
    ([{"type": "text", "text": "x", "bold": True}], "unknown fields: bold"),
    ([{"type": "image", "key": "k", "mime": "image/png", "size": 1}], "missing fields: height"),
    ([{"type": "text", "text": 5}], "text part must hold a string"),
    (TextPart(5), "text part must hold a string"),  # type: ignore[arg-type]
    (ImagePart("", "image/jpeg", 1, 1, 1), "key must be a non-empty string"),
    (ImagePart("k", 7, 1, 1, 1), "mime must be a non-empty string"),  # type: ignore[arg-type]
    (ImagePart("k" * 513, "image/jpeg", 1, 1, 1), "key has 513 characters"),
    (ImagePart("k", "image/jpeg", -1, 1, 1), "size must be a non-negative integer"),
    (ImagePart("k", "image/jpeg", 1, True, 1), "width must be a non-negative integer"),
    (ImagePart("k", "image/jpeg", 1, 1, 2.5), "height must be a non-negative integer"),  # type: ignore[arg-type]
    (ImagePart("k", "image/jpeg", 2**70, 1, 1), "size must be a non-negative integer"),
    ("lone \ud800 surrogate", "not valid Unicode"),
    ([ImagePart("k\udfff", "image/jpeg", 1, 1, 1)], "not valid Unicode"),
    (["x"] * (MAX_PARTS_PER_MESSAGE + 1), f"the limit is {MAX_PARTS_PER_MESSAGE}"),
]


@pytest.mark.parametrize(("content", "message"), BAD_CONTENT)
def test_malformed_content_is_refused_and_changes_nothing(content: Any, message: str) -> None:
    history = History()
    history.add_user("before")
    history.add_assistant("reply")
    before = history.turns
    for role in ("user", "assistant"):
        with pytest.raises(InvalidHistory, match=message):
            history.add(role, content)
    assert history.turns == before


def test_an_unknown_role_is_refused() -> None:
    history = History()
    with pytest.raises(InvalidHistory, match="role must be"):
        history.add("system", "you are a helpful assistant")
    assert len(history) == 0


def test_every_refusal_is_an_invalid_input() -> None:
    assert issubclass(InvalidHistory, InvalidInput)
    assert issubclass(TextTooLong, InvalidInput)


def test_make_content_accepts_a_tuple_of_parts() -> None:
    parts = make_content((PHOTO, TextPart("t")), max_text_chars=10)
    assert parts == (PHOTO, TextPart("t"))


def test_messages_and_parts_are_immutable() -> None:
    history = History()
    message = history.add_user([PHOTO, "caption"])
    with pytest.raises(AttributeError):
        message.role = "assistant"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        PHOTO.key = "other"  # type: ignore[misc]
    assert isinstance(message.content, tuple)


# -- the vision view ----------------------------------------------------------------------------


def photo_history(n: int) -> History:
    history = History()
    for i in range(n):
        history.add_user([photo(i), f"caption {i}"])
        history.add_assistant(f"seen {i}")
    return history


def test_for_vision_keeps_only_the_latest_image_by_default() -> None:
    history = photo_history(4)
    view = history.for_vision()
    images = [p for m in view for p in m.content if isinstance(p, ImagePart)]
    assert images == [photo(3)]
    placeholders = [m for m in view if TextPart(IMAGE_PLACEHOLDER) in m.content]
    assert len(placeholders) == 3
    # captions and replies survive; the placeholder takes the photo's place
    assert view[0].content == (TextPart(IMAGE_PLACEHOLDER), TextPart("caption 0"))
    assert [m.text for m in view if m.role == "assistant"] == [f"seen {i}" for i in range(4)]


@pytest.mark.parametrize("keep", [0, 1, 2, 5])
def test_for_vision_keeps_at_most_n_images_newest_first(keep: int) -> None:
    history = photo_history(4)
    view = history.for_vision(keep)
    images = [p for m in view for p in m.content if isinstance(p, ImagePart)]
    assert images == [photo(i) for i in range(4)][4 - min(keep, 4) :]
    assert len(view) == len(history.messages())


def test_for_vision_counts_images_within_one_message() -> None:
    history = History()
    history.add_user([photo(1), photo(2), "before and after"])
    (message,) = history.for_vision(1)
    assert message.content == (TextPart(IMAGE_PLACEHOLDER), photo(2), TextPart("before and after"))


def test_for_vision_is_a_copy_the_caller_cannot_use_to_change_history() -> None:
    history = photo_history(3)
    before = history.turns
    view = history.for_vision()
    view.clear()
    view2 = history.for_vision(0)
    view2.append(Message("user", (TextPart("injected"),)))
    assert history.turns == before
    assert history.for_vision(5) == history.messages()


def test_for_vision_placeholder_and_bounds() -> None:
    history = photo_history(2)
    view = history.for_vision(0, placeholder="[photo]")
    assert all(TextPart("[photo]") in m.content for m in view if m.role == "user")
    with pytest.raises(ValueError, match="negative"):
        history.for_vision(-1)
