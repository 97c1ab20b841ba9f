"""Key-value keys built from untrusted parts, unambiguously.

``key_of("msg", "li:si", "42")`` and ``key_of("msg", "li", "si:42")`` must differ, whatever the
parts contain, so each part is written with its length first (``msg:5:li:si:2:42`` against
``msg:2:li:5:si:42``). Every key built from a user id, a message id or a setting goes through
here, in every backend.
"""

from __future__ import annotations


def key_of(namespace: str, *parts: str | int) -> str:
    """``namespace`` (a constant of the caller) followed by each part, length-prefixed."""
    pieces = [namespace]
    for part in parts:
        text = str(part)
        pieces.append(f"{len(text)}:{text}")
    return ":".join(pieces)
