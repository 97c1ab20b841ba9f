"""One contract for every ``MediaStore``: the local directory and S3 (moto's server on loopback).

Test images are made with Pillow here; nothing binary is checked in.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config
from PIL import Image

from snapreport.errors import (
    DecompressionBomb,
    ImageTooLarge,
    InvalidImage,
    InvalidMediaKey,
    MediaNotFound,
    MediaUnavailable,
    UnsupportedImageType,
)
from snapreport.media.base import MediaStore
from snapreport.media.local import LocalMediaStore
from snapreport.media.s3 import S3MediaStore
from tests.harness.moto_s3 import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY

# ---------------------------------------------------------------- images made on the fly


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def noise_image(width: int, height: int, mode: str = "RGB") -> Image.Image:
    return Image.effect_noise((width, height), 64).convert(mode)


def jpeg(width: int = 320, height: int = 240, **options: object) -> bytes:
    return encode(noise_image(width, height), "JPEG", quality=85, **options)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    small = encode(Image.new("L", (1, 1)), "PNG")
    ihdr = struct.pack(">II", width, height) + small[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return small[:16] + ihdr + crc + small[33:]


HEX = "0123456789abcdef" * 4
BAD_KEYS: list[object] = [
    "",
    "../etc/passwd",
    "/etc/passwd",
    f"/img/{HEX}.jpg",
    f"img/../../{HEX[:58]}.jpg",
    f"img/{HEX}.jpg/../../x",
    f"img\\{HEX}.jpg",
    f"img/{HEX}.jpg\x00",
    f"img/{HEX}.jpg\n",
    f"img/{HEX.upper()}.jpg",
    f"img/{HEX}.gif",
    f"img/{HEX}.JPG",
    f"img/{HEX[:63]}.jpg",
    "img/%2e%2e%2fpasswd.jpg",
    f"img//{HEX}.jpg",
    123,
    None,
]


# ---------------------------------------------------------------- the backends


@dataclass
class Backend:
    """A store under test, how to count what it holds, and how to build one that is away."""

    name: str
    store: MediaStore
    count: Callable[[], int]
    gone: Callable[[], MediaStore]


def _local_backend(root: Path) -> Backend:
    def count() -> int:
        return sum(1 for p in root.rglob("*") if p.is_file())

    def gone() -> MediaStore:
        # the media directory's place is taken by a plain file: every access fails
        broken = root.parent / "media-gone"
        broken.write_bytes(b"not a directory")
        return LocalMediaStore(broken)

    return Backend("local", LocalMediaStore(root), count, gone)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _s3_store(bucket: str, endpoint: str, **kwargs: object) -> S3MediaStore:
    return S3MediaStore(
        bucket=bucket,
        endpoint_url=endpoint,
        region=S3_REGION,
        addressing_style="path",
        access_key_id=S3_ACCESS_KEY,
        secret_access_key=S3_SECRET_KEY,
        **kwargs,  # type: ignore[arg-type]
    )


def _s3_backend(bucket: str, endpoint: str) -> Backend:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}),
    )

    def count() -> int:
        return int(client.list_objects_v2(Bucket=bucket).get("KeyCount", 0))

    def gone() -> MediaStore:
        # nothing listens on this port any more: the endpoint has gone away
        return _s3_store(
            bucket,
            f"http://127.0.0.1:{_closed_port()}",
            max_attempts=1,
            connect_timeout_seconds=2.0,
        )

    return Backend("s3", _s3_store(bucket, endpoint), count, gone)


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "local":
        yield _local_backend(tmp_path / "media")
    elif request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        endpoint = request.getfixturevalue("s3_endpoint")
        yield _s3_backend(bucket, endpoint)
    else:  # pragma: no cover - a typo in the parametrisation
        raise AssertionError(request.param)


# ---------------------------------------------------------------- the contract


@pytest.mark.parametrize("backend", ["local", "s3"], indirect=True)
class TestMediaStoreContract:
    async def test_put_get_roundtrip(self, backend: Backend) -> None:
        data = jpeg(320, 240)
        stored = await backend.store.put_image(data, declared_mime="image/jpeg")
        assert stored.mime == "image/jpeg"
        assert stored.size == len(data)
        assert (stored.width, stored.height) == (320, 240)
        assert stored.key.startswith("img/")
        assert stored.key.endswith(".jpg")
        assert await backend.store.get(stored.key) == (data, "image/jpeg")
        await backend.store.aclose()

    async def test_same_bytes_same_key_and_one_object(self, backend: Backend) -> None:
        data = jpeg(64, 48)
        first = await backend.store.put_image(data)
        second = await backend.store.put_image(data, declared_mime="image/jpeg")
        other = await backend.store.put_image(jpeg(64, 48))
        assert first.key == second.key
        assert other.key != first.key
        assert backend.count() == 2

    async def test_concurrent_puts_of_the_same_bytes(self, backend: Backend) -> None:
        data = jpeg(48, 48)
        stored = await asyncio.gather(*(backend.store.put_image(data) for _ in range(6)))
        assert len({s.key for s in stored}) == 1
        assert backend.count() == 1  # and no temporary file left behind
        assert await backend.store.get(stored[0].key) == (data, "image/jpeg")

    @pytest.mark.parametrize(
        ("fmt", "mime", "ext", "mode"),
        [("PNG", "image/png", ".png", "RGBA"), ("WEBP", "image/webp", ".webp", "RGB")],
    )
    async def test_png_and_webp_accepted(
        self, backend: Backend, fmt: str, mime: str, ext: str, mode: str
    ) -> None:
        data = encode(noise_image(50, 30, mode), fmt)
        stored = await backend.store.put_image(data, declared_mime=mime)
        assert (stored.mime, stored.width, stored.height) == (mime, 50, 30)
        assert stored.key.endswith(ext)
        assert await backend.store.get(stored.key) == (data, mime)

    async def test_declared_mime_is_corrected_by_the_bytes(self, backend: Backend) -> None:
        data = encode(noise_image(20, 10), "PNG")
        stored = await backend.store.put_image(data, declared_mime="image/jpeg")
        assert stored.mime == "image/png"
        assert stored.key.endswith(".png")

    async def test_size_is_as_displayed_after_exif_orientation(self, backend: Backend) -> None:
        exif = Image.Exif()
        exif[0x0112] = 6  # stored landscape, shown portrait
        stored = await backend.store.put_image(jpeg(80, 40, exif=exif.tobytes()))
        assert (stored.width, stored.height) == (40, 80)

    @pytest.mark.parametrize(
        ("make", "error"),
        [
            pytest.param(lambda: b"plain text\n", UnsupportedImageType, id="text"),
            pytest.param(
                lambda: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 200,
                InvalidImage,
                id="fake-jpeg-header",
            ),
            pytest.param(lambda: jpeg(400, 300)[:2000], InvalidImage, id="truncated-jpeg"),
            pytest.param(
                lambda: encode(noise_image(40, 40, "L"), "PNG")[:300], InvalidImage, id="trunc-png"
            ),
            pytest.param(lambda: encode(noise_image(9, 9), "GIF"), UnsupportedImageType, id="gif"),
            pytest.param(lambda: encode(noise_image(9, 9), "BMP"), UnsupportedImageType, id="bmp"),
            pytest.param(
                lambda: jpeg(16, 16) + b"\x00" * (50 * 1024 * 1024), ImageTooLarge, id="50MB"
            ),
            pytest.param(lambda: png_declaring(30_000, 30_000), DecompressionBomb, id="bomb-900MP"),
            pytest.param(lambda: png_declaring(10_000, 6_000), DecompressionBomb, id="bomb-60MP"),
            pytest.param(lambda: b"", InvalidImage, id="empty"),
        ],
    )
    async def test_bad_uploads_refused_and_nothing_stored(
        self, backend: Backend, make: Callable[[], bytes], error: type[InvalidImage]
    ) -> None:
        data = make()
        with pytest.raises(error) as caught:
            await backend.store.put_image(data, declared_mime="image/jpeg")
        assert caught.value.message
        assert backend.count() == 0

    async def test_bomb_header_is_tiny_on_disk(self, backend: Backend) -> None:
        data = png_declaring(30_000, 30_000)
        assert len(data) < 200
        with pytest.raises(DecompressionBomb, match="30000x30000"):
            await backend.store.put_image(data)

    @pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
    async def test_bad_keys_refused(self, backend: Backend, key: object) -> None:
        with pytest.raises(InvalidMediaKey):
            await backend.store.get(key)  # type: ignore[arg-type]

    async def test_unknown_key_not_found(self, backend: Backend) -> None:
        key = f"img/{HEX}.jpg"
        with pytest.raises(MediaNotFound):
            await backend.store.get(key)

    async def test_ping_when_reachable(self, backend: Backend) -> None:
        await backend.store.ping()

    async def test_store_gone_is_unavailable(self, backend: Backend) -> None:
        gone = backend.gone()
        with pytest.raises(MediaUnavailable):
            await gone.ping()
        with pytest.raises(MediaUnavailable):
            await gone.put_image(jpeg(32, 32))
        with pytest.raises(MediaUnavailable):
            await gone.get(f"img/{HEX}.jpg")
        await gone.aclose()


# ---------------------------------------------------------------- backend specifics


class TestLocalMediaStore:
    async def test_layout_and_no_temporary_files_left(self, tmp_path: Path) -> None:
        store = LocalMediaStore(tmp_path / "m")
        stored = await store.put_image(jpeg(20, 20))
        files = sorted(p.relative_to(tmp_path / "m").as_posix() for p in tmp_path.rglob("*.*"))
        assert files == [stored.key]
        assert store.path_for(stored.key) == tmp_path / "m" / stored.key

    async def test_a_stale_partial_file_is_replaced(self, tmp_path: Path) -> None:
        store = LocalMediaStore(tmp_path / "m")
        data = jpeg(20, 20)
        stored = await store.put_image(data)
        store.path_for(stored.key).write_bytes(data[:10])  # as if a crash had cut it short
        await store.put_image(data)
        assert (await store.get(stored.key))[0] == data

    async def test_max_bytes_is_the_configured_one(self, tmp_path: Path) -> None:
        data = jpeg(64, 64)
        store = LocalMediaStore(tmp_path / "m", max_bytes=len(data) - 1)
        with pytest.raises(ImageTooLarge, match=str(len(data) - 1)):
            await store.put_image(data)

    async def test_ping_refuses_a_read_only_directory(self, tmp_path: Path) -> None:
        if os.geteuid() == 0:
            # root ignores permission bits; a file in the directory's place is the same failure
            root = tmp_path / "file"
            root.write_bytes(b"x")
        else:
            root = tmp_path / "ro"
            root.mkdir(mode=0o500)
        with pytest.raises(MediaUnavailable):
            await LocalMediaStore(root).ping()


class TestS3MediaStore:
    async def test_presigned_url_fetches_the_object(self, s3_endpoint: str, s3_bucket: str) -> None:
        store = _s3_store(s3_bucket, s3_endpoint)
        data = jpeg(24, 24)
        stored = await store.put_image(data)
        url = await store.presigned_url(stored.key, expires_in=300)
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        assert parts.path == f"/{s3_bucket}/{stored.key}"
        assert query["X-Amz-Expires"] == ["300"]
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert len(query["X-Amz-Signature"][0]) == 64
        async with httpx.AsyncClient() as client:
            response = await client.get(url)
        assert response.status_code == 200
        assert response.content == data
        assert response.headers["content-type"] == "image/jpeg"
        await store.aclose()

    async def test_presigned_url_refuses_bad_keys_and_lifetimes(
        self, s3_endpoint: str, s3_bucket: str
    ) -> None:
        store = _s3_store(s3_bucket, s3_endpoint)
        with pytest.raises(InvalidMediaKey):
            await store.presigned_url("../secret")
        with pytest.raises(ValueError, match="expires_in"):
            await store.presigned_url(f"img/{HEX}.jpg", expires_in=8 * 24 * 3600)

    @pytest.mark.parametrize(
        ("style", "host", "path_prefix"),
        [
            ("virtual", "photos-1250000000.cos.ap-guangzhou.myqcloud.com", ""),
            ("path", "cos.ap-guangzhou.myqcloud.com", "/photos-1250000000"),
        ],
    )
    async def test_addressing_style_shapes_the_url(
        self, style: str, host: str, path_prefix: str
    ) -> None:
        # signing is local: no request leaves the machine
        store = S3MediaStore(
            bucket="photos-1250000000",
            endpoint_url="https://cos.ap-guangzhou.myqcloud.com",
            region="ap-guangzhou",
            addressing_style=style,  # type: ignore[arg-type]
            access_key_id="AKIDEXAMPLE",
            secret_access_key="secret",
        )
        url = await store.presigned_url(f"img/{HEX}.png", expires_in=60)
        parts = urlsplit(url)
        assert parts.netloc == host
        assert parts.path == f"{path_prefix}/img/{HEX}.png"
        assert "AKIDEXAMPLE" in parse_qs(parts.query)["X-Amz-Credential"][0]

    async def test_prefix_is_prepended_to_object_keys(
        self, s3_endpoint: str, s3_bucket: str
    ) -> None:
        store = _s3_store(s3_bucket, s3_endpoint, prefix="snapreport/")
        stored = await store.put_image(jpeg(16, 16))
        client = boto3.client(
            "s3",
            endpoint_url=s3_endpoint,
            region_name=S3_REGION,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
        )
        head = client.head_object(Bucket=s3_bucket, Key=f"snapreport/{stored.key}")
        assert head["ContentType"] == "image/jpeg"
        assert (await store.get(stored.key))[1] == "image/jpeg"

    async def test_missing_bucket_is_unavailable(self, s3_endpoint: str) -> None:
        store = _s3_store("no-such-bucket-here", s3_endpoint)
        with pytest.raises(MediaUnavailable, match="bucket"):
            await store.ping()
        with pytest.raises(MediaUnavailable):
            await store.put_image(jpeg(16, 16))
