"""The ``MediaStore`` port and its value types.

Every upload is validated before it is stored (JPEG, PNG or WebP; size cap; decompression-bomb
guard); keys are content-addressed and safe (no path traversal). Adapters raise
``MediaUnavailable`` when the backend fails and ``MediaNotFound`` for an unknown key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredImage:
    """A validated, stored image: its key and what we know of it."""

    key: str
    mime: str
    size: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class CheckedImage:
    """Bytes that validation already accepted (``media.validation.check_image``), with what it
    learnt: a store keeps them without decoding them again (one decode per upload)."""

    data: bytes = field(repr=False)
    image: StoredImage


class MediaStore(Protocol):
    """Keeps validated images by content-addressed key."""

    async def put_image(
        self, data: bytes | CheckedImage, *, declared_mime: str | None = None
    ) -> StoredImage:
        """Validate ``data`` (unless it comes checked) and store it; raise an ``InvalidImage``
        subclass if it is not an acceptable image. Storing the same bytes twice yields the
        same key."""
        ...

    async def get(self, key: str) -> tuple[bytes, str]:
        """The bytes and MIME type of a stored image."""
        ...

    async def ping(self) -> None:
        """Raise ``MediaUnavailable`` if the backend cannot be reached."""
        ...

    async def aclose(self) -> None: ...
