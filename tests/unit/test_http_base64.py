"""The base64 of a photo in a JSON message: decoded strictly, wrapped or not, under a size cap."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapreport.channels.http.images import decode_base64
from snapreport.errors import ImageTooLarge, InvalidRequest

LIMIT = 1000


def wrapped(text: str, width: int, newline: str) -> str:
    return newline.join(text[i : i + width] for i in range(0, len(text), width))


@given(
    data=st.binary(min_size=1, max_size=LIMIT),
    width=st.sampled_from([4, 60, 64, 76, 10_000]),
    newline=st.sampled_from(["\n", "\r\n", " ", "\t"]),
    prefix=st.sampled_from(["", "data:image/jpeg;base64,", "data:;base64,"]),
)
def test_the_bytes_come_back_wrapped_or_not(
    data: bytes, width: int, newline: str, prefix: str
) -> None:
    text = base64.b64encode(data).decode()
    assert decode_base64(prefix + text, LIMIT) == data
    assert decode_base64(prefix + wrapped(text, width, newline) + "\n", LIMIT) == data


@pytest.mark.parametrize(
    "text",
    [
        "%%%%",
        "QUJD!",
        "QUI",  # padding missing
        "QU=I",  # padding inside
        "QUI=QUJD",  # data after the padding
        "QUJ\u00e9",  # not ASCII
        "QU I\x00",  # whitespace dropped, the rest still not base64
    ],
)
def test_anything_but_base64_is_refused(text: str) -> None:
    with pytest.raises(InvalidRequest, match=r"image\.data: not valid base64"):
        decode_base64(text, LIMIT)


def test_the_field_is_named_in_the_refusal() -> None:
    with pytest.raises(InvalidRequest, match=r"^photo: not valid base64"):
        decode_base64("!!!!", LIMIT, field="photo")


def test_the_length_decides_before_any_decoding() -> None:
    too_long = "A" * (4 * -(-LIMIT // 3) + 4)  # valid base64 of more than LIMIT bytes
    with pytest.raises(ImageTooLarge, match=f"larger than {LIMIT} bytes"):
        decode_base64(too_long, LIMIT)
    # garbage of that length is refused for its size too: nothing of it is decoded
    with pytest.raises(ImageTooLarge):
        decode_base64("!" * len(too_long), LIMIT)


def test_whitespace_does_not_count_against_the_cap() -> None:
    data = bytes(range(256)) * 3  # 768 bytes, 1024 characters of base64
    text = wrapped(base64.b64encode(data).decode(), 4, "\r\n")  # about 1530 characters
    assert len(text) > 4 * -(-LIMIT // 3)
    assert decode_base64(text, LIMIT) == data


def test_the_decoded_size_is_checked_exactly() -> None:
    data = b"x" * (LIMIT + 1)  # 1001 bytes: 1336 characters, within the length bound of 1336
    text = base64.b64encode(data).decode()
    with pytest.raises(ImageTooLarge, match=f"has {LIMIT + 1} bytes; the limit is {LIMIT}"):
        decode_base64(text, LIMIT)
