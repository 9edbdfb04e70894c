"""A model whose predictions wait for the test to open a gate, to hold a task mid-inference."""

import threading

import numpy as np

from app.models.dummy_model import DummyModel

entered = threading.Event()
gate = threading.Event()


class GatedModel(DummyModel):
    name = "gated"

    def warm_up(self) -> None:
        """No warm-up: it would be held at the gate like a request."""

    def predict(self, batch: np.ndarray) -> np.ndarray:
        entered.set()
        gate.wait(30)
        return super().predict(batch)
