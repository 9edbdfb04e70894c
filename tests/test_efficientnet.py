"""The shipped EfficientNet-Lite0: real photos get real labels, and batching changes nothing."""

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.application import create_app
from app.config import ModelSettings, Settings
from app.inference.batcher import ModelBatcher
from app.models import efficientnet_model
from app.models.efficientnet_model import EfficientNetLite0, ModelFileError
from app.utils.exceptions import StartupError
from app.utils.image_utils import open_rgb
from tests.conftest import UserHandle, upload

DATA = Path(__file__).parent / "data"
EXPECTED_TOP1 = {
    "chelsea.jpg": {"tiger cat", "tabby, tabby cat", "Egyptian cat"},
    "coffee.jpg": {"espresso"},
    "rocket.jpg": {"missile", "projectile, missile", "space shuttle"},
}


@pytest.fixture(scope="module")
def model() -> EfficientNetLite0:
    loaded = EfficientNetLite0(ModelSettings(intra_op_threads=1))
    loaded.load_model()
    return loaded


def samples(model: EfficientNetLite0, names: list[str]) -> np.ndarray:
    return np.stack(
        [model.preprocess(open_rgb(DATA / n, draft_size=model.draft_size)) for n in names]
    )


@pytest.mark.parametrize("name", sorted(EXPECTED_TOP1))
def test_real_photos_get_sensible_labels_over_http(
    client: TestClient, user: UserHandle, name: str
) -> None:
    image = upload(client, user, (DATA / name).read_bytes(), filename=name)
    response = client.post(
        "/images/inference",
        headers=user.headers,
        json={"image_id": image["id"], "model_name": "efficientnet_lite0"},
    )
    assert response.status_code == 200
    result = response.json()
    assert result["label"] in EXPECTED_TOP1[name], result["predictions"]
    assert result["model_version"] == EfficientNetLite0.version
    assert len(result["predictions"]) == 5
    assert sum(p["confidence"] for p in result["predictions"]) <= 1.0 + 1e-6


def test_preprocessing_matches_the_model_spec(model: EfficientNetLite0) -> None:
    sample = samples(model, ["coffee.jpg"])[0]
    assert sample.shape == (3, 224, 224) and sample.dtype == np.float32
    assert float(sample.min()) >= -1.0 and float(sample.max()) <= 1.0
    # Resize the shorter side to 256 and crop the centre, the long way round: same pixels.
    image = open_rgb(DATA / "coffee.jpg")  # 600x400: the crop starts at whole pixels
    resized = image.resize((384, 256), resample=2)
    crop = np.asarray(resized.crop((80, 16, 304, 240)), dtype=np.float32)
    expected = ((crop - 127) / 128).transpose(2, 0, 1)
    assert np.abs(sample - expected).max() < 1e-6


def test_batched_and_single_predictions_agree(model: EfficientNetLite0) -> None:
    names = sorted(EXPECTED_TOP1)
    batch = samples(model, names)
    together = model.predict(batch)
    one_by_one = np.concatenate([model.predict(batch[i : i + 1]) for i in range(len(names))])
    assert together.shape == (3, 1000)
    assert np.abs(together - one_by_one).max() < 1e-4


def test_the_batcher_gives_each_caller_its_own_answer(model: EfficientNetLite0) -> None:
    names = sorted(EXPECTED_TOP1) * 3
    batch = samples(model, names)
    batcher = ModelBatcher(model, ModelSettings(max_batch_size=8, max_batch_delay_ms=50))
    batcher.start()
    outputs: dict[int, np.ndarray] = {}

    def call(i: int) -> None:
        outputs[i] = batcher.submit(batch[i]).result(timeout=30)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(names))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batcher.stop()
    assert batcher.batches_run < len(names)  # some requests shared a batch
    for i, name in enumerate(names):
        assert model.postprocess(outputs[i])["label"] in EXPECTED_TOP1[name]
        assert np.abs(outputs[i] - model.predict(batch[i : i + 1])[0]).max() < 1e-4


def test_a_tampered_model_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    monkeypatch.setattr(efficientnet_model, "ONNX_SHA256", "0" * 64)
    with pytest.raises(ModelFileError, match="expected 0000"):
        EfficientNetLite0().load_model()
    # The app is built (nothing is loaded yet), but it does not start serving.
    app = create_app(make_settings())
    with (
        pytest.raises(StartupError, match="model 'efficientnet_lite0' cannot be loaded"),
        TestClient(app),
    ):
        pass
