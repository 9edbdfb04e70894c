"""Model-ready pixels of stored images, kept beside them so inference can skip decoding.

Decoding and resizing a photo costs more than EfficientNet-Lite0 itself. A stored image does
not change, so the geometric step of a ``SplitPreprocessing`` model is done once per model and
kept as a small uint8 array (224x224x3 is 150 KB). It is derived data: rebuilt when missing,
stale (another ``pixels_version``) or unreadable, and deleted with its image by the store.
"""

import io
import logging

import numpy as np

from app.models.model_interface import ModelInterface, SplitPreprocessing
from app.services.storage import ImageStore
from app.utils.exceptions import NotFoundError
from app.utils.image_utils import open_rgb

logger = logging.getLogger(__name__)


class KeptInputs:
    def __init__(self, store: ImageStore, *, enabled: bool) -> None:
        self.store = store
        self.enabled = enabled

    def sample(self, model: ModelInterface, stored_path: str) -> np.ndarray:
        """The model's input for a stored image, from kept pixels when there are some."""
        image_path = self.store.path(stored_path)
        try:
            if not self.enabled or not isinstance(model, SplitPreprocessing):
                return model.preprocess(open_rgb(image_path, draft_size=model.draft_size))
            kept_name = f"{model.name}-{model.pixels_version}.npy"
            pixels = self._load(self.store.read_derived(stored_path, kept_name), model)
            if pixels is None:
                pixels = model.pixels(open_rgb(image_path, draft_size=model.draft_size))
                self.store.keep_derived(stored_path, kept_name, _npy_bytes(pixels))
        except FileNotFoundError as exc:
            raise NotFoundError("the image's file is missing from storage") from exc
        return model.from_pixels(pixels)

    @staticmethod
    def _load(data: bytes | None, model: ModelInterface) -> np.ndarray | None:
        if data is None:
            return None
        try:
            pixels: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            logger.warning("unreadable kept input of model %s; rebuilding it", model.name)
            return None
        width, height = model.input_size
        if pixels.dtype != np.uint8 or pixels.shape != (height, width, 3):
            logger.warning("kept input of model %s has the wrong shape; rebuilding it", model.name)
            return None
        return pixels


def _npy_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, pixels, allow_pickle=False)
    return buffer.getvalue()
