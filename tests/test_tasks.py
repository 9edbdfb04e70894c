"""Asynchronous inference over HTTP: submit, poll, read the result; and the edge cases."""

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from app.database.tables import InferenceResult
from app.models.model_interface import MODEL_REGISTRY
from app.services.tasks import TaskRef
from tests import gated_model
from tests.conftest import (
    UserHandle,
    eventually,
    receive_json,
    register_and_log_in,
    services_of,
    upload,
)


def wait_for_task(
    client: TestClient, owner: UserHandle, task_id: str, timeout: float = 20
) -> dict[str, Any]:
    """The task once it is finished (completed or failed), polled as a client would."""

    def finished() -> dict[str, Any] | None:
        response = client.get(f"/images/inference/tasks/{task_id}", headers=owner.headers)
        task: dict[str, Any] = response.json()
        return task if task["status"] in ("completed", "failed") else None

    return eventually(finished, timeout=timeout)


def test_submit_poll_and_read_the_result(client: TestClient, user: UserHandle) -> None:
    image = upload(client, user)
    response = client.post(
        "/images/inference/async", headers=user.headers, json={"image_id": image["id"]}
    )
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "pending"
    assert accepted["result_url"] == f"/images/inference/tasks/{accepted['task_id']}"
    assert accepted["status_url"] == accepted["result_url"]
    assert response.headers["Location"] == accepted["status_url"]
    uuid.UUID(accepted["task_id"])

    task = wait_for_task(client, user, accepted["task_id"])
    assert task["status"] == "completed"
    assert task["attempts"] == 1
    assert task["result_url"] == f"/images/inference/{task['result_id']}"
    assert task["created_at"] <= task["started_at"] <= task["finished_at"]
    result = client.get(task["result_url"], headers=user.headers)
    assert result.status_code == 200
    assert result.json()["image_id"] == image["id"]


def test_client_chosen_task_id_and_duplicates(client: TestClient, user: UserHandle) -> None:
    image = upload(client, user)
    task_id = str(uuid.uuid4())
    body = {"image_id": image["id"], "model_name": "dummy", "task_id": task_id}
    assert (
        client.post("/images/inference/async", headers=user.headers, json=body).json()["task_id"]
        == task_id
    )
    finished = wait_for_task(client, user, task_id)

    again = client.post("/images/inference/async", headers=user.headers, json=body)
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"
    assert client.get(f"/images/inference/tasks/{task_id}", headers=user.headers).json() == finished


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"image_id": 987654}, 404, "not_found"),
        ({"model_name": "nonexistent"}, 400, "unknown_model"),
        ({"task_id": "not-a-uuid"}, 422, "validation_error"),
        ({"image_id": "one"}, 422, "validation_error"),
    ],
)
def test_bad_submissions_are_refused_before_anything_is_stored(
    client: TestClient, user: UserHandle, body: dict[str, object], status: int, code: str
) -> None:
    image = upload(client, user)
    response = client.post(
        "/images/inference/async", headers=user.headers, json={"image_id": image["id"], **body}
    )
    assert response.status_code == status
    assert response.json()["code"] == code
    if code == "unknown_model":
        assert "dummy" in response.json()["detail"]


def test_tasks_of_others_are_not_found(
    client: TestClient, user: UserHandle, other_user: UserHandle
) -> None:
    image = upload(client, user)
    foreign = client.post(
        "/images/inference/async", headers=other_user.headers, json={"image_id": image["id"]}
    )
    assert foreign.status_code == 404
    task_id = client.post(
        "/images/inference/async", headers=user.headers, json={"image_id": image["id"]}
    ).json()["task_id"]
    assert (
        client.get(f"/images/inference/tasks/{task_id}", headers=other_user.headers).status_code
        == 404
    )
    assert (
        client.get(f"/images/inference/tasks/{uuid.uuid4()}", headers=user.headers).status_code
        == 404
    )
    assert client.get(f"/images/inference/tasks/{task_id}").status_code == 401


def test_full_task_queue_answers_503_with_retry_after(
    make_client: Callable[..., TestClient],
) -> None:
    limited = make_client(inference={"max_pending_tasks": "2"})
    owner = register_and_log_in(limited)
    image = upload(limited, owner)
    runner = services_of(limited).tasks.queue
    # Two tasks are in flight, as far as admission is concerned.
    in_flight = [TaskRef(str(uuid.uuid4()), owner.id, image["id"], "dummy") for _ in range(2)]
    for ref in in_flight:
        runner.reserve(ref)
    try:
        refused = limited.post(
            "/images/inference/async", headers=owner.headers, json={"image_id": image["id"]}
        )
        assert refused.status_code == 503
        assert refused.json()["code"] == "service_busy"
        assert int(refused.headers["Retry-After"]) > 0
    finally:
        for ref in in_flight:
            runner.release(ref)
    accepted = limited.post(
        "/images/inference/async", headers=owner.headers, json={"image_id": image["id"]}
    )
    assert accepted.status_code == 202
    assert wait_for_task(limited, owner, accepted.json()["task_id"])["status"] == "completed"


def test_deleting_the_image_mid_inference_leaves_nothing_behind(
    client: TestClient, services: Services, user: UserHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(MODEL_REGISTRY, "gated", "tests.gated_model:GatedModel")
    gated_model.reset()
    image = upload(client, user)
    with client.websocket_connect(f"/ws/inference?token={user.token}") as socket:
        assert receive_json(socket)["type"] == "connected"
        task_id = client.post(
            "/images/inference/async",
            headers=user.headers,
            json={"image_id": image["id"], "model_name": "gated"},
        ).json()["task_id"]
        try:
            assert gated_model.entered.wait(20)  # the model is running this task now
            task = client.get(f"/images/inference/tasks/{task_id}", headers=user.headers)
            assert task.json()["status"] == "processing"
            assert client.delete(f"/images/{image['id']}", headers=user.headers).status_code == 204
        finally:
            gated_model.gate.set()
        # The worker is done with the task once it has said so: its last word is "failed".
        final = receive_json(socket)
        while final["status"] not in ("completed", "failed"):
            final = receive_json(socket)
    assert final["task_id"] == task_id
    assert final["status"] == "failed" and final["error"] == "the image was deleted"
    assert gated_model.batch_sizes == [1]  # the model did run the task
    assert client.get(f"/images/inference/tasks/{task_id}", headers=user.headers).status_code == 404
    with services.database.read_session() as session:
        assert session.query(InferenceResult).filter_by(image_id=image["id"]).count() == 0
    assert client.get("/health").status_code == 200
