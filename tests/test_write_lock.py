"""SQLite writers queue on an in-process lock: the wait is bounded and a failed route frees it."""

import threading
from collections.abc import Callable
from pathlib import Path

import anyio.to_thread
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Connection, event, make_url, text
from sqlalchemy.exc import OperationalError

from app.database import engine as engine_module
from app.database.engine import READ_ONLY_OPTION, Database, create_db_engine
from app.inference.kept_inputs import KeptInputs
from app.models.dummy_model import DummyModel
from app.models.model_interface import SplitPreprocessing
from app.services.storage import ImageStore
from tests.conftest import PASSWORD, eventually, services_of


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

    thread = threading.Thread(target=second_writer)
    thread.start()
    thread.join(10)  # far beyond the bound, far below the 30 s default
    assert not thread.is_alive(), "the second writer is still waiting"
    assert errors and "database is locked" in str(errors[0])
    holder.close()
    with database.session() as session:  # the lock is free again
        session.execute(text("SELECT 1"))
    database.dispose()


def test_a_failed_write_route_frees_the_lock_even_when_every_thread_waits_for_it(
    make_client: Callable[..., TestClient], database_url: str
) -> None:
    if make_url(database_url).get_backend_name() != "sqlite":
        pytest.skip("the writer lock is SQLite's")
    client = make_client(database={"pool_size": "2"})
    engine = services_of(client).database.engine
    portal = client.portal
    assert portal is not None

    async def three_threads() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 3

    async def threads_taken_and_awaited() -> tuple[float, int]:
        limiter = anyio.to_thread.current_default_thread_limiter()
        return limiter.borrowed_tokens, limiter.statistics().tasks_waiting

    portal.call(three_threads)
    outcomes: dict[str, int] = {}

    def register(name: str) -> None:
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
        outcomes[name] = client.post("/users/", json=body).status_code

    register("lock_taken")
    # The next write transaction is held, with the writer lock, until the test lets it go on.
    holding, may_go_on = threading.Event(), threading.Event()

    def hold_the_first_writer(connection: Connection) -> None:
        if connection.get_execution_options().get(READ_ONLY_OPTION) or holding.is_set():
            return
        holding.set()
        assert may_go_on.wait(20)

    event.listen(engine, "begin", hold_the_first_writer)
    threads = [threading.Thread(target=register, args=("lock_taken",), daemon=True)]
    try:
        # A request that will fail with 409 inside its write transaction, then two that wait
        # for the lock in the only other threads, then one that waits for a thread.
        threads[0].start()
        assert holding.wait(20)
        for name in ("lock_a", "lock_b", "lock_late"):
            threads.append(threading.Thread(target=register, args=(name,), daemon=True))
            threads[-1].start()
        eventually(lambda: portal.call(threads_taken_and_awaited) == (3, 1))
    finally:
        may_go_on.set()
        for thread in threads:
            thread.join(20)
        event.remove(engine, "begin", hold_the_first_writer)  # once no writer is beginning
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
