"""Human-friendly work order numbers: ``WO-<UTC date>-<per-day sequence>``.

The sequence has at least four digits (``WO-20261124-0001``); a day with more than 9999
orders simply gets longer numbers. Numbers are stored upper-case, and what users type is
normalised the same way (full-width characters folded, case ignored, spaces trimmed), so
``" wo-20261124-0001"`` finds ``WO-20261124-0001``.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

PREFIX = "WO"
SEQUENCE_DIGITS = 4


def day_key(moment: datetime) -> str:
    """The UTC calendar day of ``moment`` as ``YYYYMMDD``, which numbers are counted per."""
    if moment.tzinfo is None:
        raise ValueError("order timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y%m%d")


def format_number(day: str, sequence: int) -> str:
    """``WO-<day>-<sequence>``, the sequence zero-padded to four digits."""
    if sequence < 1:
        raise ValueError("order sequences start at 1")
    return f"{PREFIX}-{day}-{sequence:0{SEQUENCE_DIGITS}d}"


def normalize_number(text: str) -> str:
    """The canonical (stored) spelling of an order number a user typed."""
    # NFKC folds the full-width letters and digits Chinese input methods produce.
    return unicodedata.normalize("NFKC", text).strip().upper()
