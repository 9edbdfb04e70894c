"""EfficientNet-Lite0, an ImageNet-1k classifier (about 75 % top-1), run with ONNX Runtime.

The weights ship in this repository (``efficientnet_lite0/``, exported by
``scripts/export_efficientnet_lite0.py``); nothing is downloaded. Both files are checked
against their checksums when the model loads.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from app.models.model_interface import SplitPreprocessing, softmax, top_k_predictions

MODEL_DIR = Path(__file__).resolve().parent / "efficientnet_lite0"
ONNX_FILE = MODEL_DIR / "efficientnet_lite0.onnx"
LABELS_FILE = MODEL_DIR / "labels.json"
ONNX_SHA256 = "5eb46405971f5efbcb0bbdda0b0c5cf30bc10b88bc0f65d23d56ac1ad48a6867"
LABELS_SHA256 = "18c476e19ec7fb113f3c8cd5334f887b3212ec270500f8cae954d645af211341"

RESIZE_SHORTER_SIDE = 256
CROP_SIZE = 224
# The TF-Lite EfficientNet-Lite normalisation, not the usual ImageNet mean and std.
PIXEL_OFFSET = 127.0
PIXEL_SCALE = 128.0


class ModelFileError(RuntimeError):
    """A shipped model file is missing or not the one this code was written for."""


def verified_bytes(path: Path, expected_sha256: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise ModelFileError(f"{path} has sha256 {digest}, expected {expected_sha256}")
    return data


def crop_box(width: int, height: int) -> tuple[float, float, float, float]:
    """The region of the original that becomes the centre crop after the shorter-side resize."""
    scale = RESIZE_SHORTER_SIDE / min(width, height)
    crop = CROP_SIZE / scale  # side of the crop, in original pixels
    left = (width * scale - CROP_SIZE) / 2 / scale
    top = (height * scale - CROP_SIZE) / 2 / scale
    return (left, top, left + crop, top + crop)


class EfficientNetLite0(SplitPreprocessing):
    name = "efficientnet_lite0"
    version = "1.0-onnx-opset17"
    input_size = (CROP_SIZE, CROP_SIZE)
    num_labels = 1000
    # JPEGs bigger than twice this are decoded at 1/2, 1/4 or 1/8 scale: several times
    # faster, and still more pixels than the 256-pixel resize needs.
    draft_size = (320, 320)
    pixels_version = "crop224-bilinear-1"

    def load_model(self) -> None:
        labels = json.loads(verified_bytes(LABELS_FILE, LABELS_SHA256))
        if not isinstance(labels, list) or len(labels) != self.num_labels:
            raise ModelFileError(f"{LABELS_FILE} must list {self.num_labels} labels")
        self.labels = labels
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.settings.intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle ONNX Runtime threads would otherwise spin for a while after each batch, taking
        # the CPU from the request threads that decode the next images (measured on 2 cores:
        # 38 -> 47 img/s through the service at concurrency 16).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            verified_bytes(ONNX_FILE, ONNX_SHA256), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name

    def pixels(self, image: Image.Image) -> np.ndarray:
        # Shorter side to 256 then centre crop 224, done as one resize of the cropped region:
        # the same pixels as resizing everything, at a fraction of the work.
        box = crop_box(*image.size)
        return np.asarray(image.resize(self.input_size, Image.Resampling.BILINEAR, box=box))

    def from_pixels(self, pixels: np.ndarray) -> np.ndarray:
        normalised = (pixels.astype(np.float32) - PIXEL_OFFSET) / PIXEL_SCALE
        return np.ascontiguousarray(normalised.transpose(2, 0, 1))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        logits: np.ndarray = self._session.run([self._output], {self._input: batch})[0]
        return logits

    def postprocess(self, output: np.ndarray) -> dict[str, Any]:
        return top_k_predictions(softmax(output), self.labels)
