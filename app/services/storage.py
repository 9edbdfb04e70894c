"""Image files on disk: one folder per user, server-made names, atomic writes.

The store also names and deletes every file derived from an image (kept model inputs now,
thumbnails later): each lives beside its image as ``<image file>.<kind>``, so deleting the
image deletes them all, and nothing else has to know where they are.
"""

import errno
import logging
import os
import tempfile
import uuid
from pathlib import Path

from app.utils.exceptions import StorageFullError, StorageUnavailableError

logger = logging.getLogger(__name__)


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def save(self, *, owner_id: int, data: bytes, extension: str) -> str:
        """Write the bytes under a new name and return the path relative to the store.

        A full disk is StorageFullError (507), a store that cannot be written at all is
        StorageUnavailableError (503); either way nothing is left behind.
        """
        relative = f"user_{owner_id}/{uuid.uuid4().hex}.{extension}"
        try:
            (self.root / f"user_{owner_id}").mkdir(parents=True, exist_ok=True)
            self._write_atomically(self.root / relative, data, durable=True)
        except OSError as exc:
            logger.warning("could not store an upload: %s", exc)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFullError("there is no room left to store images") from exc
            raise StorageUnavailableError("images cannot be stored right now") from exc
        return relative

    def path(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"stored path escapes the upload folder: {relative!r}")
        return path

    def read_derived(self, relative: str, kind: str) -> bytes | None:
        """What was kept for an image under ``kind``, or None if nothing is."""
        try:
            return self._derived_path(relative, kind).read_bytes()
        except FileNotFoundError:
            return None

    def keep_derived(self, relative: str, kind: str, data: bytes) -> None:
        """Keep data derived from an image; a failure to keep it is logged, not raised."""
        path = self._derived_path(relative, kind)
        try:
            # Written aside and renamed, so a concurrent reader sees all of it or nothing.
            self._write_atomically(path, data, durable=False)
        except OSError:
            logger.exception("could not keep %s of a stored image", kind)
            return
        if not self.path(relative).exists():
            # The image was deleted while this was being made: keep nothing of it.
            path.unlink(missing_ok=True)

    def delete(self, relative: str) -> None:
        """Delete a stored file and everything derived from it."""
        path = self.path(relative)
        self._unlink(path)
        # After the file itself: a derived file written meanwhile checks for it (keep_derived).
        for derived in path.parent.glob(f"{path.name}.*"):
            self._unlink(derived)

    def _derived_path(self, relative: str, kind: str) -> Path:
        if not kind or "/" in kind or kind.startswith("."):
            raise ValueError(f"not a name for derived data: {kind!r}")
        path = self.path(relative)
        return path.with_name(f"{path.name}.{kind}")

    @staticmethod
    def _write_atomically(path: Path, data: bytes, *, durable: bool) -> None:
        # A reader never sees a half-written file: write a temporary file, then rename it.
        descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".write-", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    @staticmethod
    def _unlink(path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            logger.exception("could not delete stored file %s", path.name)
