"""A model whose predictions wait for the test to open a gate, to hold work mid-inference."""

import threading

import numpy as np

from app.models.dummy_model import DummyModel

entered = threading.Event()
gate = threading.Event()
batch_sizes: list[int] = []


def reset() -> None:
    """Close the gate and forget earlier batches; call before each test that uses the model."""
    entered.clear()
    gate.clear()
    batch_sizes.clear()


class GatedModel(DummyModel):
    name = "gated"

    def warm_up(self) -> None:
        """No warm-up: it would be held at the gate like a request."""

    def predict(self, batch: np.ndarray) -> np.ndarray:
        entered.set()
        gate.wait(30)
        batch_sizes.append(len(batch))
        return super().predict(batch)
