"""Synchronous inference on stored images, and reading results back."""

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.container import Services
from app.models.dummy_model import DummyModel
from app.models.model_interface import MODEL_REGISTRY
from app.utils.image_utils import open_rgb
from tests.conftest import UserHandle, image_bytes, upload


def test_sync_inference_returns_and_stores_a_result(client: TestClient, user: UserHandle) -> None:
    image = upload(client, user, image_bytes("PNG", color=(220, 30, 30)))
    response = client.post(
        "/images/inference",
        headers=user.headers,
        json={"image_id": image["id"], "model_name": "dummy"},
    )
    assert response.status_code == 200
    result = response.json()
    assert set(result) == {
        "id", "image_id", "model_name", "model_version", "predictions", "label",
        "confidence", "processing_time_ms", "created_at",
    }  # fmt: skip
    assert result["image_id"] == image["id"]
    assert result["model_name"] == "dummy"
    assert result["label"] == "red"
    confidences = [p["confidence"] for p in result["predictions"]]
    assert confidences == sorted(confidences, reverse=True)
    assert result["predictions"][0] == {
        "label": "red",
        "class_id": 3,
        "confidence": result["confidence"],
    }
    assert 0 < result["confidence"] <= 1
    assert result["processing_time_ms"] >= 0

    stored = client.get(f"/images/inference/{result['id']}", headers=user.headers)
    assert stored.status_code == 200
    assert stored.json() == result
    detail = client.get(f"/images/{image['id']}", headers=user.headers).json()
    assert [r["id"] for r in detail["results"]] == [result["id"]]


def test_default_model_is_used_when_none_is_named(
    client: TestClient, services: Services, user: UserHandle
) -> None:
    image = upload(client, user)
    response = client.post(
        "/images/inference", headers=user.headers, json={"image_id": image["id"]}
    )
    assert response.status_code == 200
    assert response.json()["model_name"] == services.settings.inference.default_model


@pytest.mark.parametrize(
    ("color", "label"),
    [((20, 60, 220), "blue"), ((250, 250, 250), "white"), ((40, 170, 60), "green")],
)
def test_dummy_model_answers_from_the_pixels(
    client: TestClient, user: UserHandle, color: tuple[int, int, int], label: str
) -> None:
    image = upload(client, user, image_bytes("JPEG", size=(300, 200), color=color))
    body = {"image_id": image["id"], "model_name": "dummy"}
    first = client.post("/images/inference", headers=user.headers, json=body).json()
    again = client.post("/images/inference", headers=user.headers, json=body).json()
    assert first["label"] == label
    assert first["predictions"] == again["predictions"]
    assert first["id"] != again["id"]


def test_unknown_model_lists_the_available_ones(client: TestClient, user: UserHandle) -> None:
    image = upload(client, user)
    response = client.post(
        "/images/inference",
        headers=user.headers,
        json={"image_id": image["id"], "model_name": "resnet9000"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_model"
    assert "dummy" in response.json()["detail"]


@pytest.mark.parametrize(
    "body", [{}, {"image_id": "x"}, {"image_id": 0}, {"image_id": 1, "model_name": ""}]
)
def test_malformed_inference_request_is_422(
    client: TestClient, user: UserHandle, body: dict[str, object]
) -> None:
    assert client.post("/images/inference", headers=user.headers, json=body).status_code == 422


def test_inference_on_missing_or_foreign_images_is_404(
    client: TestClient, user: UserHandle, other_user: UserHandle
) -> None:
    image = upload(client, user)
    for owner, image_id in ((other_user, image["id"]), (user, 987654)):
        response = client.post(
            "/images/inference", headers=owner.headers, json={"image_id": image_id}
        )
        assert response.status_code == 404


def test_other_users_results_are_not_found(
    client: TestClient, user: UserHandle, other_user: UserHandle
) -> None:
    image = upload(client, user)
    result = client.post(
        "/images/inference", headers=user.headers, json={"image_id": image["id"]}
    ).json()
    assert (
        client.get(f"/images/inference/{result['id']}", headers=other_user.headers).status_code
        == 404
    )
    assert client.get("/images/inference/987654", headers=user.headers).status_code == 404


def test_inference_needs_a_token(client: TestClient) -> None:
    assert client.post("/images/inference", json={"image_id": 1}).status_code == 401


def test_models_are_listed(client: TestClient, user: UserHandle) -> None:
    response = client.get("/models", headers=user.headers)
    assert response.status_code == 200
    models = {model["name"]: model for model in response.json()}
    assert set(models) == {"dummy", "efficientnet_lite0"}
    default = models["efficientnet_lite0"]
    assert default["loaded"] is True and default["default"] is True
    assert default["task"] == "classification"
    assert default["input_size"] == [224, 224]
    assert default["num_labels"] == 1000
    assert default["settings"]["max_batch_size"] == 8
    assert default["settings"]["intra_op_threads"] == 2
    assert models["dummy"]["num_labels"] == 12
    assert models["dummy"]["settings"]["max_batch_delay_ms"] == 0


def test_health_needs_no_token(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "database": "ok"}


DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    "name",
    [
        "chelsea.jpg",
        "grey.png",
        "palette_alpha.png",
        "cmyk.jpg",
        "one_pixel.png",
        "exif_rotated.jpg",
        "animated.gif",
    ],
)
def test_odd_real_images_upload_and_classify(
    client: TestClient, user: UserHandle, name: str
) -> None:
    image = upload(client, user, (DATA / name).read_bytes(), filename=name)
    response = client.post(
        "/images/inference", headers=user.headers, json={"image_id": image["id"]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["label"]


class SeeingModel(DummyModel):
    """The dummy model, keeping each image it is given: what a model sees of a stored image."""

    name = "seeing"
    seen: ClassVar[list[Image.Image]] = []

    def warm_up(self) -> None:
        """No warm-up: its blank image is not one to keep."""

    def preprocess(self, image: Image.Image) -> np.ndarray:
        self.seen.append(image.copy())
        return super().preprocess(image)


def pixel_difference(first: Image.Image, second: Image.Image) -> float:
    """Mean absolute difference of two images of one size, in 0-255 units."""
    return float(np.abs(np.asarray(first, np.float32) - np.asarray(second, np.float32)).mean())


def test_exif_orientation_is_applied_before_the_model_sees_the_image(
    client: TestClient, user: UserHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(MODEL_REGISTRY, "seeing", "tests.test_inference:SeeingModel")
    image = upload(client, user, (DATA / "exif_rotated.jpg").read_bytes())
    # Stored as 300x451 pixels, on its side; the EXIF tag makes it the upright 451x300 photo.
    assert (image["width"], image["height"]) == (300, 451)
    SeeingModel.seen.clear()
    body = {"image_id": image["id"], "model_name": "seeing"}
    assert client.post("/images/inference", headers=user.headers, json=body).status_code == 200
    [seen] = SeeingModel.seen
    # chelsea.jpg is the same photo, stored upright: the model saw those pixels,
    upright = open_rgb(DATA / "chelsea.jpg", draft_size=SeeingModel.draft_size)
    assert seen.size == upright.size and seen.width > seen.height
    assert pixel_difference(seen, upright) < 10
    # not the cat upside down or mirrored (which differ from it by more than 30).
    assert pixel_difference(upright, upright.transpose(Image.Transpose.ROTATE_180)) > 30
    assert pixel_difference(upright, upright.transpose(Image.Transpose.FLIP_LEFT_RIGHT)) > 30
