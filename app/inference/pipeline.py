"""The one way an image is classified: load input -> batch -> postprocess -> store.

Sync requests and background tasks both run an ``InferenceJob`` through ``InferencePipeline``;
they differ only in where the image is found and where the result goes (the job's ``locate``
and ``store``), and in how long they are willing to wait. The pipeline decides which thread
does what: database work, decoding and postprocessing in the worker thread pool (two hops),
the model in its batcher's thread, and only the wait for the batch on the event loop, where
a caller that gives up can be noticed.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
from fastapi.concurrency import run_in_threadpool

from app.inference.batcher import ModelBatcher
from app.inference.kept_inputs import KeptInputs
from app.inference.loaded_models import LoadedModels
from app.models.model_interface import ModelInterface
from app.utils.exceptions import ClientGoneError, InferenceTimeoutError, ServiceBusyError

# How long a patient job waits before offering itself again to a model queue that is full.
FULL_QUEUE_RETRY_SECONDS = 0.05

ResultT = TypeVar("ResultT", covariant=True)


@dataclass(frozen=True)
class Outcome:
    """What the model said about one image, ready to be stored."""

    model: ModelInterface
    prediction: dict[str, Any]
    elapsed_ms: float


class InferenceJob(Protocol[ResultT]):
    """One image to classify. ``locate`` and ``store`` run in a worker thread."""

    @property
    def model_name(self) -> str | None: ...

    def locate(self) -> str:
        """The image's path in the store; raise an AppError if it cannot be used."""
        ...

    def store(self, outcome: Outcome) -> ResultT:
        """Keep the outcome (in the database) and return what the caller gets."""
        ...


@dataclass(frozen=True)
class _Prepared:
    batcher: ModelBatcher
    sample: np.ndarray
    started: float


class InferencePipeline:
    def __init__(self, models: LoadedModels, inputs: KeptInputs) -> None:
        self.models = models
        self.inputs = inputs

    async def run(
        self,
        job: InferenceJob[ResultT],
        *,
        abandoned: Callable[[], Awaitable[None]] | None = None,
        wait_for_room: bool = False,
    ) -> ResultT:
        """Classify the job's image and store the outcome.

        ``abandoned()``, when given, completes once nobody wants the answer (a client that left):
        the sample is then dropped before its batch runs. ``wait_for_room`` makes a job that
        finds the model's queue full wait its turn instead of failing with 503.
        """
        prepared = await run_in_threadpool(self._prepare, job)
        output = await self._predict(prepared, abandoned, wait_for_room)
        return await run_in_threadpool(self._finish, job, prepared, output)

    def _prepare(self, job: InferenceJob[ResultT]) -> _Prepared:
        batcher = self.models.batcher(job.model_name)
        stored_path = job.locate()
        started = time.perf_counter()
        return _Prepared(batcher, self.inputs.sample(batcher.model, stored_path), started)

    async def _predict(
        self,
        prepared: _Prepared,
        abandoned: Callable[[], Awaitable[None]] | None,
        wait_for_room: bool,
    ) -> np.ndarray:
        batcher = prepared.batcher
        timeout = batcher.settings.timeout_seconds
        patient_until = time.monotonic() + timeout if wait_for_room else None
        future = await self._submit(batcher, prepared.sample, patient_until)
        # Waiting for room does not eat into the wait for the answer.
        deadline = time.monotonic() + timeout
        output = asyncio.wrap_future(future)
        gone = asyncio.ensure_future(abandoned()) if abandoned is not None else None
        waiting: set[asyncio.Future[Any]] = {output} if gone is None else {output, gone}
        try:
            done, _ = await asyncio.wait(
                waiting,
                timeout=max(0.0, deadline - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            if gone is not None:
                gone.cancel()
            if not output.done():
                # Nobody waits any more (timeout, client gone, or this coroutine cancelled):
                # a still-queued sample is skipped by the batcher (cancelled here and now, not
                # a loop turn later through the wrapper), and a running one's answer is
                # dropped quietly (the wrapper, cancelled, ignores it).
                future.cancel()
                output.cancel()
        if output in done:
            return output.result()
        if gone is not None and gone in done:
            raise ClientGoneError("the client closed the connection before the answer was ready")
        raise InferenceTimeoutError(
            f"model '{batcher.model.name}' did not answer within {timeout} s"
        )

    @staticmethod
    async def _submit(
        batcher: ModelBatcher, sample: np.ndarray, patient_until: float | None
    ) -> "Future[np.ndarray]":
        while True:
            try:
                return batcher.submit(sample)
            except ServiceBusyError:
                if patient_until is None or time.monotonic() > patient_until:
                    raise
                await asyncio.sleep(FULL_QUEUE_RETRY_SECONDS)

    @staticmethod
    def _finish(job: InferenceJob[ResultT], prepared: _Prepared, output: np.ndarray) -> ResultT:
        model = prepared.batcher.model
        prediction = model.postprocess(output)
        elapsed_ms = (time.perf_counter() - prepared.started) * 1000
        return job.store(Outcome(model, prediction, elapsed_ms))
