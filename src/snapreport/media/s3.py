"""``S3MediaStore``: validated images in an S3-compatible bucket (AWS S3, Tencent COS, MinIO).

boto3 is blocking, so every call runs in a worker thread (``asyncio.to_thread``). botocore's
errors become ``MediaUnavailable`` at this boundary, and a missing object ``MediaNotFound``.
The addressing style is a setting because Tencent COS buckets made after 2024-01-01 accept only
virtual-hosted requests, while MinIO and local fakes want path-style ones.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from snapreport.errors import ConfigurationError, MediaNotFound, MediaUnavailable
from snapreport.media.base import CheckedImage, StoredImage
from snapreport.media.validation import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    accept,
    check_key,
    mime_for_key,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

AddressingStyle = Literal["auto", "virtual", "path"]
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the longest SigV4 allows
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class S3MediaStore:
    """Keeps images as objects ``<prefix><key>`` in one bucket."""

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing_style: AddressingStyle = "auto",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        prefix: str = "",
        connect_timeout_seconds: float = 5.0,
        read_timeout_seconds: float = 30.0,
        max_attempts: int = 3,
    ) -> None:
        if not bucket:
            raise ConfigurationError("an S3 media store needs a bucket name")
        if addressing_style not in ("auto", "virtual", "path"):
            raise ConfigurationError(
                f"addressing style must be auto, virtual or path, not {addressing_style!r}"
            )
        if bool(access_key_id) != bool(secret_access_key):
            raise ConfigurationError("give both the access key id and the secret access key")
        if prefix and (prefix.startswith("/") or ".." in prefix):
            raise ConfigurationError(f"the object key prefix {prefix!r} is not a plain prefix")
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        config = Config(
            s3={"addressing_style": addressing_style},
            signature_version="s3v4",
            connect_timeout=connect_timeout_seconds,
            read_timeout=read_timeout_seconds,
            retries={"max_attempts": max_attempts, "mode": "standard"},
        )
        session = boto3.session.Session(
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            region_name=region or None,
        )
        self._client: S3Client = session.client("s3", endpoint_url=endpoint_url, config=config)

    def __repr__(self) -> str:
        return f"S3MediaStore(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r})"

    def object_key(self, key: str) -> str:
        """The object key in the bucket for a valid media key."""
        return self.prefix + check_key(key)

    async def put_image(
        self, data: bytes | CheckedImage, *, declared_mime: str | None = None
    ) -> StoredImage:
        """Validate ``data`` and upload it under its content key."""
        del declared_mime  # the bytes decide (see media.validation)
        upload = await accept(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels)
        info = upload.image
        name = self.object_key(info.key)
        await self._call(
            "store the image",
            self._client.put_object,
            Bucket=self.bucket,
            Key=name,
            Body=upload.data,
            ContentType=info.mime,
            CacheControl="private, max-age=31536000, immutable",
        )
        return info

    async def get(self, key: str) -> tuple[bytes, str]:
        name = self.object_key(key)
        mime = mime_for_key(key)

        def fetch() -> bytes:
            response = self._client.get_object(Bucket=self.bucket, Key=name)
            with response["Body"] as body:
                return body.read()

        try:
            data = await asyncio.to_thread(fetch)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                raise MediaNotFound(f"no image {key}") from exc
            raise _unavailable("read the image", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("read the image", exc) from exc
        return data, mime

    async def ping(self) -> None:
        """Raise ``MediaUnavailable`` unless the bucket answers."""
        await self._call("reach the bucket", self._client.head_bucket, Bucket=self.bucket)

    async def presigned_url(self, key: str, expires_in: int = 3600) -> str:
        """A time-limited GET URL for ``key``, for a peer that fetches it itself."""
        if not 1 <= expires_in <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires_in must be 1..{MAX_PRESIGN_SECONDS} seconds")
        name = self.object_key(key)
        url: str = await self._call(
            "sign a URL",
            self._client.generate_presigned_url,
            "get_object",
            Params={"Bucket": self.bucket, "Key": name},
            ExpiresIn=expires_in,
        )
        return url

    async def aclose(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def _call(self, doing: str, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(doing, exc) from exc


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unavailable(doing: str, exc: Exception) -> MediaUnavailable:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = f"{_error_code(exc) or 'error'} (HTTP {status})"
    else:
        detail = type(exc).__name__
    return MediaUnavailable(f"object storage failed to {doing}: {detail}")
