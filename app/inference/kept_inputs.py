"""Model-ready pixels of stored images, kept beside them so inference can skip decoding.

Decoding and resizing a photo costs more than EfficientNet-Lite0 itself. A stored image does
not change, so the geometric half of its preprocessing is done once per model and kept as
a small uint8 array (224x224x3 is 150 KB). It is derived data: rebuilt when missing, stale
(another preprocessing version) or unreadable, and deleted with its image.
"""

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from app.models.model_interface import ModelInterface
from app.utils.image_utils import open_rgb

logger = logging.getLogger(__name__)


class InputCache:
    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled

    def sample(self, model: ModelInterface, image_path: Path) -> np.ndarray:
        """The model's input for a stored image, from kept pixels when there are some."""
        if not self.enabled or model.input_cache_version is None:
            return model.preprocess(open_rgb(image_path, draft_size=model.draft_size))
        kept = image_path.with_name(
            f"{image_path.name}.{model.name}-{model.input_cache_version}.npy"
        )
        pixels = self._load(kept, model)
        if pixels is None:
            pixels = model.pixels(open_rgb(image_path, draft_size=model.draft_size))
            self._save(kept, pixels)
            if not image_path.exists():
                # The image was deleted while we decoded it: keep nothing of it.
                kept.unlink(missing_ok=True)
        return model.from_pixels(pixels)

    @staticmethod
    def _load(path: Path, model: ModelInterface) -> np.ndarray | None:
        try:
            pixels = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError):
            logger.warning("unreadable kept input %s; rebuilding it", path.name)
            return None
        width, height = model.input_size
        if pixels.dtype != np.uint8 or pixels.shape != (height, width, 3):
            logger.warning("kept input %s has the wrong shape; rebuilding it", path.name)
            return None
        return pixels

    @staticmethod
    def _save(path: Path, pixels: np.ndarray) -> None:
        # Written aside and renamed, so a concurrent reader sees all of it or nothing.
        try:
            descriptor, temp_name = tempfile.mkstemp(
                dir=path.parent, prefix=".input-", suffix=".tmp"
            )
        except OSError:
            logger.exception("could not keep the model input %s", path.name)
            return
        try:
            with os.fdopen(descriptor, "wb") as handle:
                np.save(handle, pixels, allow_pickle=False)
            os.replace(temp_name, path)
        except OSError:
            logger.exception("could not keep the model input %s", path.name)
            Path(temp_name).unlink(missing_ok=True)
