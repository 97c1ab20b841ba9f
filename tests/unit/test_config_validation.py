"""Settings that cannot work together are refused when loaded, naming the setting to fix."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from snapreport.config import Settings

WECOM = {
    "corp_id": "corp",
    "agent_id": "1000002",
    "secret": "secret",
    "token": "token",
    "encoding_aes_key": "k" * 43,
}


def load(**values: Any) -> Settings:
    return Settings.model_validate(values)


def test_redis_backend_needs_a_redis_url() -> None:
    with pytest.raises(ValidationError, match="SNAPREPORT_SESSION__URL must be a redis://"):
        load(session={"backend": "redis", "url": "localhost:6379"})
    with pytest.raises(ValidationError, match="SNAPREPORT_SESSION__URL"):
        load(session={"backend": "redis"})
    for url in ("redis://h:6379/0", "rediss://h", "unix:///run/redis.sock"):
        assert load(session={"backend": "redis", "url": url}).session.url == url


def test_s3_backend_needs_a_bucket() -> None:
    with pytest.raises(ValidationError, match="SNAPREPORT_MEDIA__BUCKET is required"):
        load(media={"backend": "s3"})
    assert load(media={"backend": "s3", "bucket": "b"}).media.bucket == "b"


@pytest.mark.parametrize("left_out", sorted(WECOM))
def test_wecom_settings_are_all_or_none(left_out: str) -> None:
    partial = {name: value for name, value in WECOM.items() if name != left_out}
    with pytest.raises(ValidationError, match=f"SNAPREPORT_WECOM__{left_out.upper()}"):
        load(wecom=partial)


def test_wecom_off_or_complete() -> None:
    assert not load().wecom.enabled
    assert load(wecom=WECOM).wecom.enabled


@pytest.mark.parametrize("key", ["short", "A" * 44, "!" * 43])
def test_a_malformed_encoding_aes_key_is_refused_when_loaded(key: str) -> None:
    with pytest.raises(ValidationError, match="SNAPREPORT_WECOM__ENCODING_AES_KEY must be the 43"):
        load(wecom={**WECOM, "encoding_aes_key": key})
