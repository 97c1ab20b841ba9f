"""Order numbers: their format, the UTC day they count in, and how typed numbers are read."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapreport.orders.numbering import day_key, format_number, normalize_number


def test_format_pads_the_sequence_to_four_digits_and_grows_past_it() -> None:
    assert format_number("20261124", 1) == "WO-20261124-0001"
    assert format_number("20261124", 9999) == "WO-20261124-9999"
    assert format_number("20261124", 10000) == "WO-20261124-10000"


def test_sequences_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        format_number("20261124", 0)


def test_the_day_is_the_utc_day() -> None:
    beijing = timezone(timedelta(hours=8))
    # 07:30 in Beijing on the 25th is still the 24th in UTC.
    assert day_key(datetime(2026, 11, 25, 7, 30, tzinfo=beijing)) == "20261124"
    assert day_key(datetime(2026, 11, 24, 23, 59, 59, tzinfo=UTC)) == "20261124"


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        day_key(datetime(2026, 11, 24, 12, 0))


@pytest.mark.parametrize(
    "typed",
    [
        "WO-20261124-0001",
        "wo-20261124-0001",
        "  Wo-20261124-0001\t",
        "ＷＯ－２０２６１１２４－０００１",  # full-width, as Chinese input methods type it
    ],
)
def test_typed_numbers_normalise_to_the_stored_spelling(typed: str) -> None:
    assert normalize_number(typed) == "WO-20261124-0001"


@given(st.dates(), st.integers(min_value=1, max_value=99_999))
def test_formatted_numbers_are_already_normal(day: date, sequence: int) -> None:
    number = format_number(f"{day:%Y%m%d}", sequence)
    assert normalize_number(number) == number
    assert normalize_number(number.lower()) == number
