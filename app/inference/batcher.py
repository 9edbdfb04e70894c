"""Dynamic batching: samples for one model queue up and run together in its worker thread."""

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from app.config import ModelSettings
from app.models.model_interface import ModelInterface
from app.utils.exceptions import InferenceFailedError, ServiceBusyError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Job:
    sample: np.ndarray
    future: "Future[np.ndarray]"


_STOP = object()


class ModelBatcher:
    """Owns one loaded model and the only thread that calls its ``predict``.

    The worker takes the first waiting sample, then gathers more for up to
    ``max_batch_delay_ms`` or until ``max_batch_size``, and runs them as one batch.
    Samples whose caller has given up (their future is cancelled) are dropped before it runs.
    """

    def __init__(self, model: ModelInterface, settings: ModelSettings) -> None:
        self.model = model
        self.settings = settings
        self._queue: queue.Queue[_Job | object] = queue.Queue(maxsize=settings.queue_size)
        self._thread = threading.Thread(target=self._work, name=f"model-{model.name}", daemon=True)
        self.batches_run = 0
        self.samples_run = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            logger.warning("model %s: queue still full at shutdown", self.model.name)
        self._thread.join(timeout)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def submit(self, sample: np.ndarray) -> "Future[np.ndarray]":
        """Queue one preprocessed sample; raise ServiceBusyError when the queue is full."""
        job = _Job(sample=sample, future=Future())
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise ServiceBusyError(
                f"model '{self.model.name}' has {self.settings.queue_size} requests waiting; "
                "try again shortly"
            ) from None
        return job.future

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop_after = self._gather(first)
            self._run(batch)
            if stop_after:
                return

    def _gather(self, first: object) -> tuple[list[_Job], bool]:
        batch = [first]
        deadline = time.monotonic() + self.settings.max_batch_delay_ms / 1000
        while len(batch) < self.settings.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                job = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if job is _STOP:
                return [j for j in batch if isinstance(j, _Job)], True
            batch.append(job)
        return [j for j in batch if isinstance(j, _Job)], False

    def _run(self, batch: list[_Job]) -> None:
        # A cancelled future belongs to a caller that gave up: skip its work.
        live = [job for job in batch if job.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            outputs = self.model.predict(np.stack([job.sample for job in live]))
        except Exception as exc:
            logger.exception("model %s failed on a batch of %d", self.model.name, len(live))
            error = InferenceFailedError(f"model '{self.model.name}' failed: {exc}")
            for job in live:
                job.future.set_exception(error)
            return
        self.batches_run += 1
        self.samples_run += len(live)
        for job, output in zip(live, outputs, strict=True):
            job.future.set_result(output)
