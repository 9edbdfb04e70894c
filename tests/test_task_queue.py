"""The in-process task queue, and the pipeline when a job is cancelled: nothing accepted is
stranded, nothing given up on runs."""

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.application import create_app
from app.config import Settings
from app.database.tables import InferenceTask
from app.inference.kept_inputs import KeptInputs
from app.inference.loaded_models import LoadedModels
from app.inference.pipeline import InferencePipeline, Outcome
from app.inference.task_queue import TaskQueue
from app.models.model_interface import MODEL_REGISTRY
from app.services.storage import ImageStore
from app.utils.exceptions import ServiceBusyError
from tests import gated_model
from tests.conftest import image_bytes, register_and_log_in, services_of, upload


def test_a_queue_runs_what_it_is_given_and_counts_it_out() -> None:
    done: list[str] = []

    async def scenario() -> None:
        finished = asyncio.Event()

        async def handler(item: str) -> None:
            done.append(item)
            if len(done) == 3:
                finished.set()

        queue: TaskQueue[str] = TaskQueue(workers=2, max_pending=3, handler=handler)
        await queue.start()
        for item in "abc":
            assert queue.reserve(item)
            await queue.put(item)
        assert not queue.reserve("a", force=True)  # held already: it must not run twice
        with pytest.raises(ServiceBusyError):
            queue.reserve("d")  # three accepted, none finished yet: the fourth waits
        await asyncio.wait_for(finished.wait(), 10)
        await queue.stop()
        assert queue.pending == 0

    asyncio.run(scenario())
    assert sorted(done) == ["a", "b", "c"]


def test_a_task_handed_over_after_the_queue_stopped_is_not_counted_forever() -> None:
    async def scenario() -> int:
        async def handler(item: str) -> None:
            raise AssertionError("a stopped queue runs nothing")

        queue: TaskQueue[str] = TaskQueue(workers=1, max_pending=1, handler=handler)
        await queue.start()
        queue.reserve("late")
        await queue.stop()  # e.g. shutdown between the commit and the hand-off
        await queue.put("late")  # stays pending in the database for the next start
        return queue.pending

    assert asyncio.run(scenario()) == 0


def test_an_app_that_is_not_serving_refuses_tasks_instead_of_stranding_them(
    make_settings: Callable[..., Settings],
) -> None:
    # Built but never started (no lifespan): there is no worker to run a task.
    client = TestClient(create_app(make_settings(inference={"default_model": "dummy"})))
    owner = register_and_log_in(client)
    image = upload(client, owner)
    refused = client.post(
        "/images/inference/async", headers=owner.headers, json={"image_id": image["id"]}
    )
    assert refused.status_code == 503
    assert refused.json()["code"] == "service_busy"
    assert "Retry-After" in refused.headers


@dataclass(frozen=True)
class StoredImageJob:
    stored_path: str
    model_name: str = "gated"

    def locate(self) -> str:
        return self.stored_path

    def store(self, outcome: Outcome) -> Outcome:
        return outcome


def test_a_cancelled_job_leaves_nothing_queued_for_the_model(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # E.g. a task worker cancelled at shutdown while its sample waits behind another batch.
    monkeypatch.setitem(MODEL_REGISTRY, "gated", "tests.gated_model:GatedModel")
    gated_model.reset()
    settings = make_settings(**{"model.gated": {"max_batch_size": "1", "max_batch_delay_ms": "0"}})
    store = ImageStore(tmp_path)
    job = StoredImageJob(store.save(owner_id=1, data=image_bytes(), extension="png"))
    models = LoadedModels(settings)
    pipeline = InferencePipeline(models, KeptInputs(store, enabled=False))

    async def scenario() -> None:
        busy = asyncio.create_task(pipeline.run(job))
        assert await asyncio.to_thread(gated_model.entered.wait, 10)  # the model is held
        waiting = asyncio.create_task(pipeline.run(job))
        batcher = models.batcher("gated")
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
        await asyncio.to_thread(models.close)  # the batcher has taken all it will take

    try:
        asyncio.run(scenario())
    finally:
        gated_model.gate.set()
        models.close()
    assert gated_model.batch_sizes == [1]  # the cancelled sample never reached the model


def test_the_sweep_runs_an_unfinished_task_that_no_worker_holds(
    make_client: Callable[..., TestClient],
) -> None:
    # A row left pending with nobody to run it, as a database outage can leave one.
    client = make_client(inference={"sweep_interval_seconds": "0.2", "stuck_after_seconds": "0.5"})
    owner = register_and_log_in(client)
    image = upload(client, owner)
    services = services_of(client)
    task_id = str(uuid.uuid4())
    with services.database.session() as session:
        session.add(
            InferenceTask(id=task_id, owner_id=owner.id, image_id=image["id"], model_name="dummy")
        )
        session.commit()
    deadline = time.monotonic() + 20
    while (task := client.get(f"/images/inference/tasks/{task_id}", headers=owner.headers).json())[
        "status"
    ] != "completed":
        assert time.monotonic() < deadline, task
        time.sleep(0.05)
    assert task["attempts"] == 1 and task["result_id"]


def test_the_sweep_leaves_a_task_that_is_merely_waiting_its_turn(
    make_client: Callable[..., TestClient],
) -> None:
    # E.g. a task another process serving the same database has just accepted.
    client = make_client()
    owner = register_and_log_in(client)
    image = upload(client, owner)
    services = services_of(client)
    with services.database.session() as session:
        session.add(
            InferenceTask(
                id=str(uuid.uuid4()), owner_id=owner.id, image_id=image["id"], model_name="dummy"
            )
        )
        session.commit()
    assert client.portal is not None
    assert client.portal.call(partial(services.tasks.sweep, idle_for=60)) == 0
    assert client.portal.call(partial(services.tasks.sweep, idle_for=0)) == 1
