"""Bad input and hostile clients: each case here once gave a 500, a hang or a leak."""

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jose import jwt
from PIL import Image
from starlette.websockets import WebSocketDisconnect

from app.container import Services
from app.models.model_interface import MODEL_REGISTRY
from app.services import images as image_service
from app.services.security import TokenService
from app.utils.image_utils import open_rgb
from tests import gated_model
from tests.conftest import (
    PASSWORD,
    SECRET_KEY,
    UserHandle,
    eventually,
    image_bytes,
    receive_json,
    register_and_log_in,
    stored_file,
    upload,
)

TOO_BIG = 10**20


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/images/{TOO_BIG}"),
        ("GET", f"/images/{TOO_BIG}/file"),
        ("DELETE", f"/images/{TOO_BIG}"),
        ("GET", f"/images/inference/{TOO_BIG}"),
        ("GET", f"/images/?skip={TOO_BIG}"),
    ],
)
def test_ids_beyond_the_database_range_are_422(
    client: TestClient, user: UserHandle, method: str, path: str
) -> None:
    response = client.request(method, path, headers=user.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize("route", ["/images/inference", "/images/inference/async"])
def test_image_id_beyond_the_range_in_a_body_is_422(
    client: TestClient, user: UserHandle, route: str
) -> None:
    assert client.post(route, headers=user.headers, json={"image_id": TOO_BIG}).status_code == 422


def test_a_token_for_an_impossible_user_id_is_401(client: TestClient, services: Services) -> None:
    token = services.tokens.issue(user_id=TOO_BIG, token_version=0)
    assert client.get("/users/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_lone_surrogate_in_json_gets_a_json_422(client: TestClient, user: UserHandle) -> None:
    body = b'{"image_id": 1, "model_name": "\\ud800"}'
    response = client.post(
        "/images/inference",
        headers={**user.headers, "Content-Type": "application/json"},
        content=body,
    )
    assert response.status_code in (400, 422)
    assert response.json()["code"]


def test_unknown_fields_such_as_callback_url_are_refused(
    client: TestClient, user: UserHandle
) -> None:
    image = upload(client, user)
    body = {"image_id": image["id"], "callback_url": "http://127.0.0.1:9/hook"}
    response = client.post("/images/inference/async", headers=user.headers, json=body)
    assert response.status_code == 422
    assert "callback_url" in str(response.json()["detail"])


def test_large_json_bodies_are_refused_before_they_are_read(client: TestClient) -> None:
    body = {"username": "a" * 200_000, "email": "big@example.com", "password": PASSWORD}
    response = client.post("/users/", json=body)
    assert response.status_code == 413
    assert "limit of 65536 bytes" in response.json()["detail"]


def test_download_of_a_missing_file_is_404(
    client: TestClient, services: Services, user: UserHandle
) -> None:
    image = upload(client, user)
    stored_file(services, image["id"]).unlink()
    response = client.get(f"/images/{image['id']}/file", headers=user.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_an_unexpected_error_is_json_with_the_request_id(
    client: TestClient, user: UserHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(image_service, "list_images", broken)
    response = client.get("/images/", headers={**user.headers, "X-Request-ID": "bug-1"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error", "code": "internal_error"}
    assert response.headers["X-Request-ID"] == "bug-1"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_misleading_characters_are_removed_from_file_names(
    client: TestClient, user: UserHandle
) -> None:
    body = upload(client, user, filename="holiday\u202egnp.exe")
    assert "\u202e" not in body["filename"]


def test_task_ids_are_found_in_any_spelling(client: TestClient, user: UserHandle) -> None:
    image = upload(client, user)
    task_id = client.post(
        "/images/inference/async", headers=user.headers, json={"image_id": image["id"]}
    ).json()["task_id"]
    response = client.get(f"/images/inference/tasks/{task_id.upper()}", headers=user.headers)
    assert response.status_code == 200
    assert response.json()["task_id"] == task_id
    assert client.get("/images/inference/tasks/not-a-uuid", headers=user.headers).status_code == 422


def test_huge_images_are_shrunk_right_after_decoding(tmp_path: Path) -> None:
    huge = Image.new("RGBA", (4000, 3000), (10, 20, 30, 128))
    huge.save(tmp_path / "huge.png", compress_level=1)
    assert open_rgb(tmp_path / "huge.png", draft_size=(320, 320)).size == (445, 334)


def test_websocket_closes_when_the_password_changes(client: TestClient, user: UserHandle) -> None:
    with client.websocket_connect(f"/ws/inference?token={user.token}") as socket:
        assert socket.receive_json()["type"] == "connected"
        assert (
            client.put(
                "/users/me", headers=user.headers, json={"password": "another-password-1"}
            ).status_code
            == 200
        )
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
    assert closed.value.code == 1008


def test_websocket_closes_when_its_token_expires(client: TestClient, user: UserHandle) -> None:
    short = TokenService(SECRET_KEY, timedelta(seconds=2)).issue(user_id=user.id, token_version=0)
    expires_at = jwt.get_unverified_claims(short)["exp"]
    with client.websocket_connect(f"/ws/inference?token={short}") as socket:
        assert receive_json(socket)["type"] == "connected"
        with pytest.raises(WebSocketDisconnect) as closed:
            receive_json(socket, timeout=10)
    assert closed.value.code == 1008
    assert time.time() >= expires_at  # open for as long as the token was valid


def test_a_task_whose_image_goes_before_it_starts_gets_a_final_update(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(MODEL_REGISTRY, "gated", "tests.gated_model:GatedModel")
    single = make_client(inference={"task_workers": "1"})
    owner = register_and_log_in(single)
    first, second = upload(single, owner), upload(single, owner)
    gated_model.reset()
    with single.websocket_connect(f"/ws/inference?token={owner.token}") as socket:
        receive_json(socket)
        try:
            for image in (first, second):
                body = {"image_id": image["id"], "model_name": "gated"}
                submitted = single.post("/images/inference/async", headers=owner.headers, json=body)
                assert submitted.status_code == 202
            assert gated_model.entered.wait(20)  # the only worker is busy with the first task
            assert (
                single.delete(f"/images/{second['id']}", headers=owner.headers).status_code == 204
            )
        finally:
            gated_model.gate.set()
        finals: dict[int, dict[str, Any]] = {}
        while len(finals) < 2:
            message = receive_json(socket)
            if message["status"] in ("completed", "failed"):
                finals[message["image_id"]] = message
    assert finals[first["id"]]["status"] == "completed"
    gone = finals[second["id"]]
    assert gone["status"] == "failed" and gone["model_name"] == "gated"
    assert gone["error"] == "the image was deleted"


class BrokenModel(gated_model.GatedModel):
    def load_model(self) -> None:
        raise RuntimeError("weights are corrupt")


def test_a_task_for_a_model_that_cannot_load_fails_instead_of_waiting_forever(
    client: TestClient, user: UserHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(MODEL_REGISTRY, "broken", "tests.test_hardening:BrokenModel")
    image = upload(client, user, image_bytes())
    accepted = client.post(
        "/images/inference/async",
        headers=user.headers,
        json={"image_id": image["id"], "model_name": "broken"},
    )
    assert accepted.status_code == 202

    def finished() -> dict[str, Any] | None:
        task: dict[str, Any] = client.get(
            accepted.json()["status_url"], headers=user.headers
        ).json()
        return task if task["status"] in ("completed", "failed") else None

    task = eventually(finished)
    assert task["status"] == "failed"
    assert task["error"] == "model 'broken' cannot be loaded; the server log says why"
    sync = client.post(
        "/images/inference",
        headers=user.headers,
        json={"image_id": image["id"], "model_name": "broken"},
    )
    assert sync.status_code == 503
    assert sync.json()["code"] == "model_unavailable"
    assert "weights are corrupt" not in sync.text  # the reason is for the log, not the client
    assert int(sync.headers["Retry-After"]) > 0
