"""The in-process task queue and its sweep: nothing accepted is stranded or run twice."""

import asyncio
import time
import uuid
from collections.abc import Callable
from functools import partial

import pytest
from fastapi.testclient import TestClient

from app.application import create_app
from app.config import Settings
from app.database.tables import InferenceTask
from app.inference.task_queue import TaskQueue
from app.utils.exceptions import ServiceBusyError
from tests.conftest import register_and_log_in, services_of, upload


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
