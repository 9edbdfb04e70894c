"""Image files on disk: one folder per user, server-made names, atomic writes."""

import logging
import os
import tempfile
import uuid
from pathlib import Path

logger = logging.getLogger(__name__)


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def save(self, *, owner_id: int, data: bytes, extension: str) -> str:
        """Write the bytes under a new name and return the path relative to the store."""
        folder = self.root / f"user_{owner_id}"
        folder.mkdir(parents=True, exist_ok=True)
        relative = f"user_{owner_id}/{uuid.uuid4().hex}.{extension}"
        # A reader never sees a half-written file: write a temporary file, then rename it.
        descriptor, temp_name = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, self.root / relative)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        return relative

    def path(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"stored path escapes the upload folder: {relative!r}")
        return path

    def delete(self, relative: str) -> None:
        """Delete a stored file and whatever was derived from it (named "<file>.<suffix>")."""
        path = self.path(relative)
        self._unlink(path)
        # After the file itself: a derived file written meanwhile checks for it (InputCache).
        for derived in path.parent.glob(f"{path.name}.*"):
            self._unlink(derived)

    @staticmethod
    def _unlink(path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            logger.exception("could not delete stored file %s", path.name)
