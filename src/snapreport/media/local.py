"""``LocalMediaStore``: validated images as files under one directory (the default store).

A key ``img/<sha256>.<ext>`` is the file ``<root>/img/<sha256>.<ext>``. Keys are checked
against one strict pattern before any path is built, writes go to a temporary file in the same
directory and are renamed into place (a reader never sees half a file), and all file IO runs in
a worker thread so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path

from snapreport.errors import MediaNotFound, MediaUnavailable
from snapreport.media.base import CheckedImage, StoredImage
from snapreport.media.validation import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    accept,
    check_key,
    mime_for_key,
)


class LocalMediaStore:
    """Keeps images as files under ``root``; made on first write."""

    def __init__(
        self,
        root: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    def __repr__(self) -> str:
        return f"LocalMediaStore(root={str(self.root)!r})"

    def path_for(self, key: str) -> Path:
        """The file a valid key is stored in."""
        return self.root / check_key(key)

    async def put_image(
        self, data: bytes | CheckedImage, *, declared_mime: str | None = None
    ) -> StoredImage:
        """Validate ``data`` and write it under its content key (once: same bytes, same file)."""
        del declared_mime  # the bytes decide (see media.validation)
        upload = await accept(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels)
        info = upload.image
        path = self.path_for(info.key)
        try:
            await asyncio.to_thread(_write_atomically, path, upload.data)
        except OSError as exc:
            raise MediaUnavailable(f"cannot write to the media directory: {exc.strerror}") from exc
        return info

    async def get(self, key: str) -> tuple[bytes, str]:
        path = self.path_for(key)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise MediaNotFound(f"no image {key}") from exc
        except OSError as exc:
            raise MediaUnavailable(f"cannot read from the media directory: {exc.strerror}") from exc
        return data, mime_for_key(key)

    async def ping(self) -> None:
        """Raise ``MediaUnavailable`` unless the root is (or can be made) a writable directory."""
        try:
            await asyncio.to_thread(_check_writable_dir, self.root)
        except OSError as exc:
            raise MediaUnavailable(
                f"the media directory is not usable: {exc.strerror or exc}"
            ) from exc

    async def aclose(self) -> None:
        return None


def _check_writable_dir(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    if not root.is_dir():
        raise NotADirectoryError(20, "Not a directory", str(root))
    if not os.access(root, os.W_OK | os.X_OK):
        raise PermissionError(13, "Permission denied", str(root))


def _write_atomically(path: Path, data: bytes) -> None:
    if path.is_file() and path.stat().st_size == len(data):
        return  # content-addressed: the same key already holds these bytes
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
