"""The models this process serves: each loaded once, on first use or at start-up."""

import logging
import threading
import time
from typing import Any

from app.config import Settings
from app.models.model_interface import available_models, create_model, model_class
from app.services.batch_runner import BatchRunner

logger = logging.getLogger(__name__)


class ModelPool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._runners: dict[str, BatchRunner] = {}
        self._lock = threading.Lock()

    @property
    def default_model(self) -> str:
        return self.settings.inference.default_model

    def runner(self, name: str | None = None) -> BatchRunner:
        """The running batch runner of a model, loading it the first time it is asked for."""
        name = name or self.default_model
        runner = self._runners.get(name)
        if runner is not None:
            return runner
        model_class(name)  # an unknown name fails here, before taking the lock
        # One lock for all loads: many requests arriving together load a model once.
        with self._lock:
            runner = self._runners.get(name)
            if runner is None:
                runner = self._load(name)
                self._runners[name] = runner
        return runner

    def _load(self, name: str) -> BatchRunner:
        started = time.perf_counter()
        settings = self.settings.model_settings(name)
        model = create_model(name, settings)
        model.load_model()
        model.warm_up()
        runner = BatchRunner(model, settings)
        runner.start()
        logger.info(
            "model %s %s loaded in %.0f ms",
            name,
            model.version,
            (time.perf_counter() - started) * 1000,
        )
        return runner

    def describe(self) -> list[dict[str, Any]]:
        described = []
        for name in available_models():
            cls = model_class(name)
            runner = self._runners.get(name)
            described.append(
                {
                    "name": name,
                    "version": cls.version,
                    "task": cls.task,
                    "input_size": list(cls.input_size),
                    "num_labels": cls.num_labels,
                    "loaded": runner is not None,
                    "default": name == self.default_model,
                    "settings": self.settings.model_settings(name).model_dump(),
                    "queue_depth": runner.queue_depth if runner else 0,
                }
            )
        return described

    def close(self) -> None:
        with self._lock:
            for runner in self._runners.values():
                runner.stop()
            self._runners.clear()
