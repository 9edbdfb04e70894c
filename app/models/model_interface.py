"""The contract every model follows, and the factory that builds a model from its name.

Adding a model takes one new file in this folder (a ``ModelInterface`` subclass) and one line
in ``MODEL_REGISTRY`` below. Classes are imported only when first used, so a model's heavy
dependencies cost nothing until somebody asks for it.
"""

import importlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from app.config import ModelSettings
from app.utils.exceptions import UnknownModelError

# name -> "module:Class"
MODEL_REGISTRY: dict[str, str] = {
    "dummy": "app.models.dummy_model:DummyModel",
    "efficientnet_lite0": "app.models.efficientnet_model:EfficientNetLite0",
}
DEFAULT_TOP_K = 5


class ModelInterface(ABC):
    """A model in four steps: load, preprocess one image, predict a batch, postprocess one output.

    ``preprocess`` runs in the request's thread, so it may run for many images at once;
    ``predict`` runs in the model's single worker thread on a stacked batch of samples.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    task: ClassVar[str] = "classification"
    input_size: ClassVar[tuple[int, int]]
    # How many classes the model tells apart, for `GET /models`; None where it does not say.
    num_labels: ClassVar[int | None] = None
    # JPEGs are decoded at reduced scale when the model needs no more than this many pixels.
    draft_size: ClassVar[tuple[int, int] | None] = None
    labels: list[str]

    def __init__(self, settings: ModelSettings | None = None) -> None:
        self.settings = settings or ModelSettings()

    @abstractmethod
    def load_model(self) -> None:
        """Load weights and labels; called once before the first prediction."""

    @abstractmethod
    def preprocess(self, image: Image.Image) -> np.ndarray:
        """Turn one upright RGB image into one model input sample."""

    @abstractmethod
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on samples stacked along the first axis; one output row per sample."""

    @abstractmethod
    def postprocess(self, output: np.ndarray) -> dict[str, Any]:
        """Turn one output row into ``{"predictions": [...], "label": ..., "confidence": ...}``."""

    def warm_up(self) -> None:
        """Run one prediction so the first request does not pay for lazy initialisation."""
        blank = Image.new("RGB", self.input_size, (128, 128, 128))
        self.predict(self.preprocess(blank)[np.newaxis])


class SplitPreprocessing(ModelInterface):
    """A model whose preprocessing is two steps, so the costly first one can be kept.

    ``pixels`` is the geometric step (decode, resize, crop: most of the cost) and returns
    model-ready ``uint8`` pixels of shape ``(height, width, 3)``; ``from_pixels`` is the cheap
    numeric step. For a stored image, the first step's output is kept beside it
    (``app.inference.kept_inputs``) and later inferences skip decoding. ``pixels_version``
    names the first step: changing it makes every kept copy stale.
    """

    pixels_version: ClassVar[str]

    @abstractmethod
    def pixels(self, image: Image.Image) -> np.ndarray:
        """The geometric step: model-ready uint8 pixels of one upright RGB image."""

    @abstractmethod
    def from_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """The numeric step: the model's input sample from ``pixels``."""

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return self.from_pixels(self.pixels(image))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    probabilities: np.ndarray = exp / exp.sum(axis=-1, keepdims=True)
    return probabilities


def top_k_predictions(
    probabilities: np.ndarray, labels: list[str], k: int = DEFAULT_TOP_K
) -> dict[str, Any]:
    """The k most likely classes, most likely first, in the shape results are stored in."""
    k = min(k, probabilities.shape[-1])
    best = np.argsort(-probabilities, kind="stable")[:k]
    predictions = [
        {"label": labels[i], "class_id": int(i), "confidence": float(probabilities[i])}
        for i in best
    ]
    return {
        "predictions": predictions,
        "label": predictions[0]["label"],
        "confidence": predictions[0]["confidence"],
    }


def available_models() -> list[str]:
    return sorted(MODEL_REGISTRY)


def model_class(name: str) -> type[ModelInterface]:
    if name not in MODEL_REGISTRY:
        raise UnknownModelError(
            f"unknown model '{name}'; available models: {', '.join(available_models())}"
        )
    module_name, _, class_name = MODEL_REGISTRY[name].partition(":")
    cls: type[ModelInterface] = getattr(importlib.import_module(module_name), class_name)
    return cls


def create_model(name: str, settings: ModelSettings | None = None) -> ModelInterface:
    """A new, not yet loaded instance of the named model."""
    return model_class(name)(settings)
