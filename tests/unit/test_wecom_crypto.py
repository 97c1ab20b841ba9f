"""WeCom callback crypto: the official known-answer vectors and strict rejection."""

from __future__ import annotations

import base64
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from snapreport.channels.wecom.crypto import WeComCrypto
from snapreport.channels.wecom.messages import TextMessage, parse_message
from snapreport.errors import ConfigurationError, InvalidSignature

TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP_ID = "ww1436e0e65a779aee"

URL_SIGNATURE = "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb"
URL_TIMESTAMP = "1476416373"
URL_NONCE = "47744683"
URL_ECHOSTR = (
    "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
)

MSG_SIGNATURE = "0c3914025cb4b4d68103f6bfc8db550f79dcf48e"
MSG_TIMESTAMP = "1476422779"
MSG_NONCE = "1597212914"
MSG_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3Nye"
    "TkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfd"
    "e0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pF"
    "rdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84"
    "EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
)

KEY = base64.b64decode(AES_KEY + "=")


@pytest.fixture
def crypto() -> WeComCrypto:
    return WeComCrypto(TOKEN, AES_KEY, CORP_ID)


def raw_encrypt(plain: bytes) -> str:
    """AES-256-CBC as WeCom does it, with no padding added: the caller controls every byte."""
    encryptor = Cipher(algorithms.AES(KEY), modes.CBC(KEY[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def pkcs7(data: bytes, block: int = 32) -> bytes:
    pad = block - len(data) % block
    return data + bytes([pad]) * pad


def envelope(msg: bytes, receive_id: bytes = CORP_ID.encode(), length: int | None = None) -> bytes:
    size = len(msg) if length is None else length
    return b"R" * 16 + struct.pack(">I", size) + msg + receive_id


def test_url_check_vector_verifies_and_decrypts(crypto: WeComCrypto) -> None:
    crypto.verify(URL_SIGNATURE, URL_TIMESTAMP, URL_NONCE, URL_ECHOSTR)
    assert crypto.decrypt(URL_ECHOSTR) == "1288432023552776189"


def test_message_vector_verifies_and_decrypts(crypto: WeComCrypto) -> None:
    crypto.verify(MSG_SIGNATURE, MSG_TIMESTAMP, MSG_NONCE, MSG_ENCRYPT)
    xml = crypto.decrypt(MSG_ENCRYPT)
    message = parse_message(xml)
    assert isinstance(message, TextMessage)
    assert message.content == "你好"
    assert message.header.from_user_name == "ChenJiaShun"
    assert message.header.to_user_name == CORP_ID
    assert message.header.msg_id == "1456453720"
    assert message.header.agent_id == "1000002"
    assert message.header.create_time == 1476422779


def test_sign_reproduces_the_vector_signatures(crypto: WeComCrypto) -> None:
    assert crypto.sign(URL_TIMESTAMP, URL_NONCE, URL_ECHOSTR) == URL_SIGNATURE
    assert crypto.sign(MSG_TIMESTAMP, MSG_NONCE, MSG_ENCRYPT) == MSG_SIGNATURE


@pytest.mark.parametrize(
    ("signature", "timestamp", "nonce", "encrypt"),
    [
        ("0" * 40, MSG_TIMESTAMP, MSG_NONCE, MSG_ENCRYPT),
        (MSG_SIGNATURE, "1476422780", MSG_NONCE, MSG_ENCRYPT),
        (MSG_SIGNATURE, MSG_TIMESTAMP, "1597212915", MSG_ENCRYPT),
        (MSG_SIGNATURE, MSG_TIMESTAMP, MSG_NONCE, MSG_ENCRYPT[:-4] + "AAA="),
        ("", MSG_TIMESTAMP, MSG_NONCE, MSG_ENCRYPT),
    ],
)
def test_verify_rejects_any_changed_part(
    crypto: WeComCrypto, signature: str, timestamp: str, nonce: str, encrypt: str
) -> None:
    with pytest.raises(InvalidSignature, match="signature"):
        crypto.verify(signature, timestamp, nonce, encrypt)


def test_verify_rejects_another_token() -> None:
    other = WeComCrypto("another-token", AES_KEY, CORP_ID)
    with pytest.raises(InvalidSignature):
        other.verify(MSG_SIGNATURE, MSG_TIMESTAMP, MSG_NONCE, MSG_ENCRYPT)


def test_encrypt_round_trips_with_a_fixed_prefix(crypto: WeComCrypto) -> None:
    text = "<xml><Content>消防通道堵塞</Content></xml>"
    sealed = crypto.encrypt(text, random16=b"0123456789abcdef")
    assert sealed == crypto.encrypt(text, random16=b"0123456789abcdef")
    assert len(base64.b64decode(sealed)) % 32 == 0
    assert crypto.decrypt(sealed) == text


def test_encrypt_without_a_prefix_is_random(crypto: WeComCrypto) -> None:
    assert crypto.encrypt("x") != crypto.encrypt("x")


def test_full_padding_block_is_accepted(crypto: WeComCrypto) -> None:
    # random + length + message + receive id is exactly 64 bytes: PKCS#7 adds a whole block
    msg = b"m" * (64 - 16 - 4 - len(CORP_ID))
    sealed = raw_encrypt(pkcs7(envelope(msg)))
    assert len(base64.b64decode(sealed)) == 96  # a whole block of 32 padding bytes
    assert crypto.decrypt(sealed) == msg.decode()


def test_rejects_other_receive_id(crypto: WeComCrypto) -> None:
    sealed = raw_encrypt(pkcs7(envelope(b"hello", receive_id=b"ww0000000000000000")))
    with pytest.raises(InvalidSignature, match="receive id"):
        crypto.decrypt(sealed)


def test_rejects_missing_receive_id(crypto: WeComCrypto) -> None:
    sealed = raw_encrypt(pkcs7(envelope(b"hello", receive_id=b"")))
    with pytest.raises(InvalidSignature, match="receive id"):
        crypto.decrypt(sealed)


def test_rejects_receive_id_with_trailing_bytes(crypto: WeComCrypto) -> None:
    sealed = raw_encrypt(pkcs7(envelope(b"hello", receive_id=CORP_ID.encode() + b"x")))
    with pytest.raises(InvalidSignature, match="receive id"):
        crypto.decrypt(sealed)


def test_rejects_length_beyond_the_body(crypto: WeComCrypto) -> None:
    sealed = raw_encrypt(pkcs7(envelope(b"hello", length=10_000)))
    with pytest.raises(InvalidSignature, match="length"):
        crypto.decrypt(sealed)


def test_rejects_a_body_shorter_than_the_length_field(crypto: WeComCrypto) -> None:
    sealed = raw_encrypt(pkcs7(b"R" * 16 + b"\x00\x00"))
    with pytest.raises(InvalidSignature, match="too short"):
        crypto.decrypt(sealed)


@pytest.mark.parametrize(
    "tail",
    [
        b"\x00" * 32,  # pad byte 0
        bytes([33]) * 32,  # pad byte above the 32-byte block
        b"\x05" * 31 + b"\x04",  # claims 4, but the bytes before it differ
        b"x" * 28 + b"\x01\x02\x03\x04",  # the last pad bytes are not all equal
    ],
)
def test_rejects_bad_padding(crypto: WeComCrypto, tail: bytes) -> None:
    body = envelope(b"hi")
    body += b"z" * (-len(body) % 32)
    sealed = raw_encrypt(body + tail)
    with pytest.raises(InvalidSignature, match="padding"):
        crypto.decrypt(sealed)


def test_rejects_unpadded_plaintext(crypto: WeComCrypto) -> None:
    body = envelope(b"hi")
    body += b"z" * (-len(body) % 32)  # last byte "z" is 122: not a pad length
    with pytest.raises(InvalidSignature, match="padding"):
        crypto.decrypt(raw_encrypt(body))


def test_rejects_corrupted_ciphertext(crypto: WeComCrypto) -> None:
    data = bytearray(base64.b64decode(MSG_ENCRYPT))
    data[-20] ^= 0xFF  # garbles the last block, where the padding and receive id are
    with pytest.raises(InvalidSignature):
        crypto.decrypt(base64.b64encode(bytes(data)).decode())


@pytest.mark.parametrize(
    "encrypt",
    [
        "",
        "not base64 at all!",
        base64.b64encode(b"x" * 15).decode(),  # not a whole AES block
        base64.b64encode(b"x" * 33).decode(),
        MSG_ENCRYPT.replace("+", " "),
    ],
)
def test_rejects_malformed_envelopes(crypto: WeComCrypto, encrypt: str) -> None:
    with pytest.raises(InvalidSignature):
        crypto.decrypt(encrypt)


def test_rejects_oversized_envelopes(crypto: WeComCrypto) -> None:
    with pytest.raises(InvalidSignature, match="too large"):
        crypto.decrypt("A" * (64 * 1024 + 4))


def test_rejects_non_utf8_messages(crypto: WeComCrypto) -> None:
    sealed = raw_encrypt(pkcs7(envelope(b"\xff\xfe")))
    with pytest.raises(InvalidSignature, match="UTF-8"):
        crypto.decrypt(sealed)


@pytest.mark.parametrize(
    ("token", "key", "receive_id"),
    [
        ("", AES_KEY, CORP_ID),
        (TOKEN, AES_KEY[:-1], CORP_ID),
        (TOKEN, "!" * 43, CORP_ID),
        (TOKEN, AES_KEY, ""),
    ],
)
def test_refuses_unusable_settings(token: str, key: str, receive_id: str) -> None:
    with pytest.raises(ConfigurationError):
        WeComCrypto(token, key, receive_id)
