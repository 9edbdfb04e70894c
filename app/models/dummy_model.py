"""A deterministic, instant model for tests and demos: names the colour closest to the image's mean.

It is honest rather than random: the answer is computed from the pixels, so the same image
always gets the same result and different images usually get different ones.
"""

from typing import Any

import numpy as np
from PIL import Image

from app.models.model_interface import ModelInterface, softmax, top_k_predictions

# Named colours as RGB; the class id is the position in this list.
PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 40),
    "green": (40, 170, 60),
    "cyan": (40, 200, 210),
    "blue": (30, 60, 220),
    "purple": (130, 50, 170),
    "pink": (240, 140, 180),
    "brown": (130, 80, 40),
}
# Smaller values make the scores sharper; in units of RGB distance.
TEMPERATURE = 40.0


class DummyModel(ModelInterface):
    name = "dummy"
    version = "1.0"
    input_size = (32, 32)
    num_labels = len(PALETTE)
    draft_size = (64, 64)

    def load_model(self) -> None:
        self.labels = list(PALETTE)
        self._palette = np.array(list(PALETTE.values()), dtype=np.float32)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return np.asarray(image.resize(self.input_size, Image.Resampling.BOX), dtype=np.uint8)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        mean_colours = batch.reshape(batch.shape[0], -1, 3).mean(axis=1, dtype=np.float32)
        distances = np.linalg.norm(
            mean_colours[:, np.newaxis, :] - self._palette[np.newaxis], axis=-1
        )
        return softmax(-distances / TEMPERATURE)

    def postprocess(self, output: np.ndarray) -> dict[str, Any]:
        return top_k_predictions(output, self.labels)
