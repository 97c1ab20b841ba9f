"""Where a sign-in may send the browser afterwards: only to a path of ours."""

from __future__ import annotations

from typing import Final

MAX_NEXT_CHARS: Final = 512


def safe_next(candidate: str | None) -> str:
    """``candidate`` if it is a path on this site, else ``/``.

    A path of ours starts with exactly one ``/``: ``//host`` and ``/\\host`` are read by
    browsers as another site, a scheme (``https:``, ``javascript:``) is another site or a
    script, and control characters or backslashes anywhere are refused outright rather than
    interpreted.
    """
    if not candidate or len(candidate) > MAX_NEXT_CHARS:
        return "/"
    if not candidate.startswith("/") or candidate.startswith("//"):
        return "/"
    if "\\" in candidate or any(ord(c) < 0x20 or ord(c) == 0x7F for c in candidate):
        return "/"
    return candidate
