"""SQLite writers queue on an in-process lock: the wait is bounded and a failed route frees it."""

import threading
import time
from pathlib import Path

import anyio.to_thread
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.database import engine as engine_module
from app.database.engine import Database, create_db_engine
from app.inference.kept_inputs import KeptInputs
from app.models.dummy_model import DummyModel
from app.models.model_interface import SplitPreprocessing
from app.services.storage import ImageStore
from tests.conftest import PASSWORD


def test_a_writer_waits_a_bounded_time_for_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 300)
    database = Database(
        create_db_engine(f"sqlite:///{tmp_path}/w.db", pool_size=2, pool_recycle=60)
    )
    holder = database.session()
    holder.execute(text("SELECT 1"))  # a write transaction: it holds the writer lock
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            with database.session() as session:
                session.execute(text("SELECT 1"))
        except OperationalError as exc:
            errors.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=second_writer)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2
    assert errors and "database is locked" in str(errors[0])
    holder.close()
    with database.session() as session:  # the lock is free again
        session.execute(text("SELECT 1"))
    database.dispose()


def test_a_failed_write_route_frees_the_lock_even_when_every_thread_waits_for_it(
    make_client,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    client: TestClient = make_client(database={"pool_size": "2"})
    database = client.app.state.services.database

    async def three_threads() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 3

    client.portal.call(three_threads)  # type: ignore[union-attr]
    outcomes: dict[str, int] = {}

    def register(name: str) -> None:
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
        outcomes[name] = client.post("/users/", json=body).status_code

    register("lock_taken")
    holder = database.session()
    holder.execute(text("SELECT 1"))  # another writer holds the lock for a moment
    # A request that will fail with 409 inside its write transaction, then two that wait for
    # the lock in the only other threads, then one that waits for a thread.
    threads = [threading.Thread(target=register, args=("lock_taken",), daemon=True)]
    threads[0].start()
    time.sleep(1)
    for name in ("lock_a", "lock_b", "lock_late"):
        threads.append(threading.Thread(target=register, args=(name,), daemon=True))
        threads[-1].start()
        time.sleep(0.5)
    holder.commit()
    holder.close()
    for thread in threads:
        thread.join(20)
    assert outcomes == {"lock_taken": 409, "lock_a": 201, "lock_b": 201, "lock_late": 201}


class SlowCachedModel(DummyModel, SplitPreprocessing):
    """Keeps pixels; deleting the image while they are computed is the race under test."""

    pixels_version = "test-1"
    during_pixels = staticmethod(lambda: None)

    def pixels(self, image: Image.Image) -> np.ndarray:
        type(self).during_pixels()
        return np.zeros((32, 32, 3), dtype=np.uint8)

    def from_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return pixels


def test_an_image_deleted_while_its_input_is_kept_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ImageStore(tmp_path / "uploads")
    buffer = tmp_path / "source.png"
    Image.new("RGB", (40, 40), (200, 10, 10)).save(buffer)
    relative = store.save(owner_id=1, data=buffer.read_bytes(), extension="png")
    monkeypatch.setattr(
        SlowCachedModel, "during_pixels", staticmethod(lambda: store.delete(relative))
    )
    model = SlowCachedModel()
    model.load_model()
    KeptInputs(store, enabled=True).sample(model, relative)
    assert list((tmp_path / "uploads" / "user_1").iterdir()) == []
