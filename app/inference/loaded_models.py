"""The models this process serves: each loaded once, with its batcher, on first use or at start."""

import logging
import threading
import time
from typing import Any

from app.config import Settings
from app.inference.batcher import ModelBatcher
from app.models.model_interface import available_models, create_model, model_class
from app.utils.exceptions import ModelUnavailableError

logger = logging.getLogger(__name__)


class LoadedModels:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._batchers: dict[str, ModelBatcher] = {}
        self._lock = threading.Lock()

    @property
    def default_model(self) -> str:
        return self.settings.inference.default_model

    def batcher(self, name: str | None = None) -> ModelBatcher:
        """The running batcher of a model, loading the model the first time it is asked for.

        Loading blocks (seconds for a real model): call it from a worker thread.
        """
        name = name or self.default_model
        batcher = self._batchers.get(name)
        if batcher is not None:
            return batcher
        model_class(name)  # an unknown name fails here, before taking the lock
        # One lock for all loads: many requests arriving together load a model once.
        with self._lock:
            batcher = self._batchers.get(name)
            if batcher is None:
                batcher = self._load(name)
                self._batchers[name] = batcher
        return batcher

    def _load(self, name: str) -> ModelBatcher:
        started = time.perf_counter()
        settings = self.settings.model_settings(name)
        model = create_model(name, settings)
        try:
            model.load_model()
            model.warm_up()
        except Exception as exc:
            logger.error("model %s cannot be loaded: %s", name, exc)
            # The reason (paths, library messages) goes to the log, not to the client.
            raise ModelUnavailableError(
                f"model '{name}' cannot be loaded; the server log says why"
            ) from exc
        batcher = ModelBatcher(model, settings)
        batcher.start()
        logger.info(
            "model %s %s loaded in %.0f ms",
            name,
            model.version,
            (time.perf_counter() - started) * 1000,
        )
        return batcher

    def describe(self) -> list[dict[str, Any]]:
        described = []
        for name in available_models():
            cls = model_class(name)
            batcher = self._batchers.get(name)
            described.append(
                {
                    "name": name,
                    "version": cls.version,
                    "task": cls.task,
                    "input_size": list(cls.input_size),
                    "num_labels": cls.num_labels,
                    "loaded": batcher is not None,
                    "default": name == self.default_model,
                    "settings": self.settings.model_settings(name).model_dump(),
                    "queue_depth": batcher.queue_depth if batcher else 0,
                }
            )
        return described

    def close(self) -> None:
        with self._lock:
            for batcher in self._batchers.values():
                batcher.stop()
            self._batchers.clear()
