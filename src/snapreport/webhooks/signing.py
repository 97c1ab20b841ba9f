"""Standard Webhooks signatures: ``whsec_`` secrets and ``v1,`` HMAC-SHA256 signatures.

The signed content is ``<webhook-id>.<webhook-timestamp>.<body>``; the key is the secret's
base64 part after ``whsec_``. During a rotation's overlap both secrets sign, and the header
carries both signatures, space-separated (receivers accept any one that verifies).
"""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105  (the format's prefix, not a secret)
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of the message with ``secret``."""
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.digest(_key(secret), content, "sha256")  # the one-shot C path
    return "v1," + base64.b64encode(digest).decode()


def signature_header(
    secrets_in_use: Sequence[str], message_id: str, timestamp: int, body: bytes
) -> str:
    """The ``webhook-signature`` header: one signature per secret in use, space-separated."""
    return " ".join(signature(s, message_id, timestamp, body) for s in secrets_in_use)
