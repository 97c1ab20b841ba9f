"""WeCom callback crypto: message signatures and AES-256-CBC envelopes, checked strictly.

The scheme: the key is ``base64(EncodingAESKey + "=")`` (32 bytes), the IV its first 16 bytes,
padding PKCS#7 to 32-byte blocks. A plaintext is 16 random bytes, the message length (4 bytes,
big-endian), the message (UTF-8) and the receive id (the CorpID of a self-built app). Every
deviation is refused with ``InvalidSignature``: a lenient decoder lets forged or truncated
envelopes through.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from snapreport.errors import ConfigurationError, InvalidSignature

BLOCK = 32
RANDOM_BYTES = 16
LENGTH_BYTES = 4
# an encrypted envelope larger than this is not something WeCom sends to a callback
MAX_ENCRYPTED_CHARS = 64 * 1024


class WeComCrypto:
    """Signs, verifies, encrypts and decrypts WeCom callback payloads for one application."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if not token:
            raise ConfigurationError("the WeCom callback Token is empty")
        if len(encoding_aes_key) != 43:
            raise ConfigurationError("the WeCom EncodingAESKey must be 43 characters")
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error as exc:
            raise ConfigurationError("the WeCom EncodingAESKey is not valid base64") from exc
        if not receive_id:
            raise ConfigurationError("the WeCom receive id (CorpID) is empty")
        self._token = token
        self._key = key
        self._receive_id = receive_id.encode()

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        parts = sorted([self._token, timestamp, nonce, encrypt])
        return hashlib.sha1("".join(parts).encode(), usedforsecurity=False).hexdigest()

    def verify(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        """Raise ``InvalidSignature`` unless ``signature`` signs the other three values."""
        expected = self.sign(timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
            raise InvalidSignature("the message signature does not match")

    def decrypt(self, encrypt: str) -> str:
        """The message inside ``encrypt``; ``InvalidSignature`` on any malformed envelope."""
        if len(encrypt) > MAX_ENCRYPTED_CHARS:
            raise InvalidSignature("the encrypted message is too large")
        try:
            data = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidSignature("the encrypted message is not valid base64") from exc
        if not data or len(data) % 16:
            raise InvalidSignature("the encrypted message is not a whole number of AES blocks")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or pad > len(plain) or plain[-pad:] != bytes([pad]) * pad:
            raise InvalidSignature("the encrypted message has invalid padding")
        body = plain[RANDOM_BYTES:-pad]
        if len(body) < LENGTH_BYTES:
            raise InvalidSignature("the encrypted message is too short")
        (length,) = struct.unpack(">I", body[:LENGTH_BYTES])
        if length > len(body) - LENGTH_BYTES:
            raise InvalidSignature("the encrypted message's length field is out of bounds")
        msg = body[LENGTH_BYTES : LENGTH_BYTES + length]
        receive_id = body[LENGTH_BYTES + length :]
        if not hmac.compare_digest(receive_id, self._receive_id):
            raise InvalidSignature("the encrypted message is for another receive id")
        try:
            return msg.decode()
        except UnicodeDecodeError as exc:
            raise InvalidSignature("the encrypted message is not UTF-8") from exc

    def encrypt(self, msg: str, *, random16: bytes | None = None) -> str:
        """Encrypt ``msg`` as WeCom does; ``random16`` fixes the random prefix (for tests)."""
        prefix = os.urandom(RANDOM_BYTES) if random16 is None else random16
        if len(prefix) != RANDOM_BYTES:
            raise ValueError("random16 must be 16 bytes")
        raw = msg.encode()
        body = prefix + struct.pack(">I", len(raw)) + raw + self._receive_id
        pad = BLOCK - len(body) % BLOCK
        encryptor = self._cipher().encryptor()
        data = encryptor.update(body + bytes([pad]) * pad) + encryptor.finalize()
        return base64.b64encode(data).decode()

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))
