"""Stored photos keep their metadata as evidence; only staff (the admin token) are served it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import ExifTags, Image

from snapreport.media.validation import content_key
from tests.harness.metadata_photos import MAKER, gps_jpeg, has_metadata
from tests.integration.http_kit import ADMIN_TOKEN, API_TOKEN, b64, bearer, make_settings, running

USER = "alice"


def _message(photo: bytes) -> dict[str, object]:
    return {"user_id": USER, "image": {"data": b64(photo), "mime": "image/jpeg"}}


def _stripped_of(served: bytes, original: bytes) -> None:
    """``served`` is ``original`` without its metadata: same pixels, same way up, no GPS."""
    assert not has_metadata(served)
    with Image.open(io.BytesIO(served)) as copy, Image.open(io.BytesIO(original)) as source:
        assert dict(copy.getexif()) == {ExifTags.Base.Orientation: 6}
        assert copy.tobytes() == source.tobytes()


async def test_users_get_the_photo_without_metadata_and_staff_the_original(
    tmp_path: Path,
) -> None:
    photo = gps_jpeg()
    assert has_metadata(photo)
    key = content_key(photo, "image/jpeg")
    settings = make_settings(tmp_path, api_token=API_TOKEN, admin_token=ADMIN_TOKEN)
    async with running(settings) as r:
        sent = await r.client.post(
            "/api/v1/messages", json=_message(photo), headers=bearer(API_TOKEN)
        )
        assert sent.json()["state"] == "waiting_location", sent.text
        user = await r.client.get(f"/api/v1/users/{USER}/media/{key}", headers=bearer(API_TOKEN))
        staff_as_user = await r.client.get(
            f"/api/v1/users/{USER}/media/{key}", headers=bearer(ADMIN_TOKEN)
        )
        staff = await r.client.get(f"/api/v1/media/{key}", headers=bearer(ADMIN_TOKEN))
        stored, _ = await r.ctx.media.get(key)
    assert user.status_code == 200
    assert user.headers["content-type"] == "image/jpeg"
    assert "authorization" in user.headers["vary"].lower()
    _stripped_of(user.content, photo)
    assert staff.content == photo
    assert staff_as_user.content == photo
    assert stored == photo, "the original is kept as evidence"


@pytest.mark.parametrize("tokens", [{"api_token": API_TOKEN}, {}], ids=["api-token-only", "open"])
async def test_without_an_admin_token_nobody_gets_the_metadata(
    tmp_path: Path, tokens: dict[str, str]
) -> None:
    photo = gps_jpeg()
    key = content_key(photo, "image/jpeg")
    headers = bearer(API_TOKEN) if tokens else {}
    async with running(make_settings(tmp_path, **tokens), headers=headers) as r:
        sent = await r.client.post("/api/v1/messages", json=_message(photo))
        assert sent.status_code == 200, sent.text
        admin_route = await r.client.get(f"/api/v1/media/{key}")
        user_route = await r.client.get(f"/api/v1/users/{USER}/media/{key}")
    assert admin_route.status_code == user_route.status_code == 200
    _stripped_of(admin_route.content, photo)
    _stripped_of(user_route.content, photo)
    assert MAKER.encode() not in admin_route.content
