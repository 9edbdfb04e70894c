"""The dynamic batcher, driven directly with a small instrumented model; the pipeline over it."""

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from app.config import ModelSettings, Settings
from app.inference.batcher import ModelBatcher
from app.inference.kept_inputs import KeptInputs
from app.inference.loaded_models import LoadedModels
from app.inference.pipeline import InferencePipeline, Outcome
from app.models.model_interface import (
    MODEL_REGISTRY,
    ModelInterface,
    create_model,
    top_k_predictions,
)
from app.services.storage import ImageStore
from app.utils.exceptions import (
    ClientGoneError,
    InferenceFailedError,
    ServiceBusyError,
    UnknownModelError,
)
from tests import gated_model
from tests.conftest import image_bytes


class DoublingModel(ModelInterface):
    """Doubles its input and records the size of every batch it is given.

    ``entered`` is set when a batch reaches ``predict``, which then waits for ``gate``
    (open unless a test closes it) to hold the worker there.
    """

    name = "doubling"
    version = "test"
    input_size = (1, 1)

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.batch_sizes: list[int] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def load_model(self) -> None:
        self.labels = ["x"]

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return np.zeros(1, dtype=np.float32)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.entered.set()
        self.gate.wait(5)
        self.batch_sizes.append(len(batch))
        if self.fail:
            raise RuntimeError("boom")
        return batch * 2

    def postprocess(self, output: np.ndarray) -> dict[str, Any]:
        return {"value": float(output[0])}


def start(model: DoublingModel, **knobs: float) -> ModelBatcher:
    settings = ModelSettings(
        **{"max_batch_size": 8, "max_batch_delay_ms": 20, "queue_size": 64, **knobs}
    )
    model.load_model()
    runner = ModelBatcher(model, settings)
    runner.start()
    return runner


def test_requests_waiting_together_share_batches_and_get_their_own_answers() -> None:
    model = DoublingModel()
    model.gate.clear()  # the first batch is held until every request is waiting
    runner = start(model)
    waiting = [runner.submit(np.array([i], dtype=np.float32)) for i in range(24)]
    model.gate.set()
    results = [float(answer.result(5)[0]) for answer in waiting]
    runner.stop()
    assert results == [2.0 * i for i in range(24)]
    assert max(model.batch_sizes) > 1
    assert max(model.batch_sizes) <= 8
    assert sum(model.batch_sizes) == 24


def test_a_full_queue_refuses_with_service_busy() -> None:
    model = DoublingModel()
    model.gate.clear()  # the worker blocks on its first batch
    runner = start(model, queue_size=2, max_batch_size=1, max_batch_delay_ms=0)
    first = runner.submit(np.ones(1, dtype=np.float32))
    assert model.entered.wait(5)  # the worker has taken the first job and is held in predict
    runner.submit(np.ones(1, dtype=np.float32))
    runner.submit(np.ones(1, dtype=np.float32))
    with pytest.raises(ServiceBusyError) as error:
        runner.submit(np.ones(1, dtype=np.float32))
    assert error.value.headers["Retry-After"] == "1"
    model.gate.set()
    assert float(first.result(5)[0]) == 2.0
    runner.stop()


def test_a_request_whose_caller_gave_up_is_dropped() -> None:
    model = DoublingModel()
    model.gate.clear()
    runner = start(model, max_batch_size=1, max_batch_delay_ms=0)
    busy = runner.submit(np.ones(1, dtype=np.float32))
    assert model.entered.wait(5)  # the worker is held in predict with it
    abandoned = runner.submit(np.full(1, 7, dtype=np.float32))
    assert abandoned.cancel()
    kept = runner.submit(np.full(1, 3, dtype=np.float32))
    model.gate.set()
    assert float(kept.result(5)[0]) == 6.0
    busy.result(5)
    runner.stop()
    assert model.batch_sizes == [1, 1]  # the abandoned sample never reached the model


def test_a_failing_model_fails_every_caller_of_the_batch() -> None:
    runner = start(DoublingModel(fail=True))
    with pytest.raises(InferenceFailedError, match="boom"):
        runner.submit(np.ones(1, dtype=np.float32)).result(5)
    runner.stop()


def test_factory_builds_registered_models_and_names_the_others() -> None:
    model = create_model("dummy")
    model.load_model()
    red = model.preprocess(Image.new("RGB", (50, 50), (230, 20, 20)))
    output = model.predict(np.stack([red, red]))
    assert output.shape == (2, len(model.labels))
    assert model.postprocess(output[0])["label"] == "red"
    with pytest.raises(UnknownModelError, match="available models: dummy"):
        create_model("missing")


def test_top_k_is_sorted_and_bounded() -> None:
    outcome = top_k_predictions(np.array([0.1, 0.6, 0.3]), ["a", "b", "c"], k=2)
    assert [p["label"] for p in outcome["predictions"]] == ["b", "c"]
    assert outcome["label"] == "b"
    assert outcome["confidence"] == pytest.approx(0.6)


@dataclass(frozen=True)
class StoredImageJob:
    """The simplest InferenceJob: a stored image, whose outcome goes back to the caller."""

    stored_path: str
    model_name: str = "gated"

    def locate(self) -> str:
        return self.stored_path

    def store(self, outcome: Outcome) -> Outcome:
        return outcome


@dataclass(frozen=True)
class GatedPipeline:
    pipeline: InferencePipeline
    models: LoadedModels
    job: StoredImageJob


@pytest.fixture
def gated(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[GatedPipeline]:
    """A pipeline over the gated model, one sample per batch, and a job for a stored image."""
    monkeypatch.setitem(MODEL_REGISTRY, "gated", "tests.gated_model:GatedModel")
    gated_model.reset()
    settings = make_settings(**{"model.gated": {"max_batch_size": "1", "max_batch_delay_ms": "0"}})
    store = ImageStore(tmp_path)
    models = LoadedModels(settings)
    try:
        yield GatedPipeline(
            InferencePipeline(models, KeptInputs(store, enabled=False)),
            models,
            StoredImageJob(store.save(owner_id=1, data=image_bytes(), extension="png")),
        )
    finally:
        gated_model.gate.set()
        models.close()


def test_a_caller_that_leaves_is_dropped_before_its_batch_runs(gated: GatedPipeline) -> None:
    async def left() -> None:
        """A client already gone: the pipeline notices as soon as it starts waiting."""

    async def scenario() -> None:
        busy = asyncio.create_task(gated.pipeline.run(gated.job))
        assert await asyncio.to_thread(gated_model.entered.wait, 10)  # the model is held
        with pytest.raises(ClientGoneError):
            await gated.pipeline.run(gated.job, abandoned=left)
        gated_model.gate.set()
        assert (await busy).prediction["label"] == "red"
        await asyncio.to_thread(gated.models.close)  # the batcher has taken all it will take

    asyncio.run(scenario())
    assert gated_model.batch_sizes == [1]  # only the first job ever reached the model


def test_a_cancelled_job_leaves_nothing_queued_for_the_model(gated: GatedPipeline) -> None:
    # E.g. a task worker cancelled at shutdown while its sample waits behind another batch.
    async def scenario() -> None:
        busy = asyncio.create_task(gated.pipeline.run(gated.job))
        assert await asyncio.to_thread(gated_model.entered.wait, 10)  # the model is held
        waiting = asyncio.create_task(gated.pipeline.run(gated.job))
        batcher = gated.models.batcher("gated")
        for _ in range(1000):  # until the second sample is queued behind the first
            if batcher.queue_depth == 1:
                break
            await asyncio.sleep(0.01)
        assert batcher.queue_depth == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        gated_model.gate.set()
        await busy
        await asyncio.to_thread(gated.models.close)  # the batcher has taken all it will take

    asyncio.run(scenario())
    assert gated_model.batch_sizes == [1]  # the cancelled sample never reached the model
