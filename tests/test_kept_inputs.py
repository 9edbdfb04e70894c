"""Stored images keep their model-ready pixels: later inferences skip decoding, same results."""

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from app.container import Services
from app.inference.kept_inputs import KeptInputs
from app.models.efficientnet_model import EfficientNetLite0
from app.services.storage import ImageStore
from app.utils.image_utils import open_rgb
from tests.conftest import UserHandle, stored_file, upload

DATA = Path(__file__).parent / "data"


def kept_inputs(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.*.npy"))


def infer(client: TestClient, owner: UserHandle, image_id: int) -> dict[str, object]:
    body = {"image_id": image_id, "model_name": "efficientnet_lite0"}
    response = client.post("/images/inference", headers=owner.headers, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_first_inference_keeps_the_input_and_later_ones_agree(
    client: TestClient, services: Services, user: UserHandle
) -> None:
    image = upload(client, user, (DATA / "coffee.jpg").read_bytes(), filename="coffee.jpg")
    path = stored_file(services, image["id"])
    assert kept_inputs(path) == []
    first = infer(client, user, image["id"])
    [kept] = kept_inputs(path)
    assert kept.name.endswith(f".efficientnet_lite0-{EfficientNetLite0.pixels_version}.npy")
    assert np.load(kept).shape == (224, 224, 3)
    again = infer(client, user, image["id"])
    assert again["predictions"] == first["predictions"]

    assert client.delete(f"/images/{image['id']}", headers=user.headers).status_code == 204
    assert not path.exists()
    assert kept_inputs(path) == []


def test_an_unreadable_kept_input_is_rebuilt(
    client: TestClient, services: Services, user: UserHandle
) -> None:
    image = upload(client, user, (DATA / "rocket.jpg").read_bytes())
    first = infer(client, user, image["id"])
    [kept] = kept_inputs(stored_file(services, image["id"]))
    kept.write_bytes(b"not an array")
    assert infer(client, user, image["id"])["predictions"] == first["predictions"]
    assert np.load(kept).shape == (224, 224, 3)


def test_kept_pixels_give_exactly_the_fresh_input(tmp_path: Path) -> None:
    model = EfficientNetLite0()
    model.load_model()
    store = ImageStore(tmp_path)
    photo = store.save(owner_id=1, data=(DATA / "chelsea.jpg").read_bytes(), extension="jpg")
    fresh = model.preprocess(open_rgb(store.path(photo), draft_size=model.draft_size))
    kept = KeptInputs(store, enabled=True)
    built = kept.sample(model, photo)  # decodes and keeps
    reused = kept.sample(model, photo)  # reads what was kept
    assert np.array_equal(fresh, built) and np.array_equal(fresh, reused)
    assert len(kept_inputs(store.path(photo))) == 1

    other = store.save(owner_id=1, data=(DATA / "chelsea.jpg").read_bytes(), extension="jpg")
    assert np.array_equal(KeptInputs(store, enabled=False).sample(model, other), fresh)
    assert kept_inputs(store.path(other)) == []
