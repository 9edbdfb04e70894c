"""Fixtures: a database per run (SQLite, or a fresh MariaDB database), the app, users and images.

Set IMGAPI_TEST_MYSQL_URL (a server URL without a database, e.g.
mysql+pymysql://root@127.0.0.1:3306) to run the whole suite against MySQL/MariaDB.
"""

import io
import itertools
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import create_engine, text
from starlette.testclient import WebSocketTestSession

from app.application import create_app
from app.config import PROJECT_ROOT, Settings, load_settings
from app.container import Services
from app.database.tables import Image as ImageRow
from app.services import security

MYSQL_URL_ENV = "IMGAPI_TEST_MYSQL_URL"
PASSWORD = "correct-horse-battery"
SECRET_KEY = "test-secret-key-that-is-long-enough-for-hs256"
_user_numbers = itertools.count(1)
T = TypeVar("T")


def pytest_report_header() -> str:
    server = os.environ.get(MYSQL_URL_ENV)
    return f"database: {'MySQL/MariaDB at ' + server if server else 'SQLite'}"


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Hash passwords with the cheapest argon2 parameters in this process.

    The real ones cost about 0.12 s per hash or check, by design; the suite registers and logs
    in well over a hundred users, so that alone would take half a minute. Same scheme, same
    code paths, only the cost differs; the live servers (other processes) keep the real one.
    """
    cheap = security.password_context.copy(
        argon2__rounds=1, argon2__memory_cost=8, argon2__parallelism=1
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(security, "password_context", cheap)
        yield


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = os.environ.get(MYSQL_URL_ENV)
    if not server:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    # A database of our own, dropped at the end; an unreachable server fails the run.
    name = f"imgapi_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server.rstrip("/") + "/", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        )
    try:
        yield f"{server.rstrip('/')}/{name}?charset=utf8mb4"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


# Every app and server of a run shares its database. The periodic sweep of one would take up
# the unfinished tasks of another (and fail them: their files are in another's folder), so it
# runs hourly here; a test of the sweep sets its own interval. The start-up sweep still runs.
SWEEP_INTERVAL_SECONDS = "3600"


@pytest.fixture(scope="session")
def make_settings(
    tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> Callable[..., Settings]:
    """Settings from the real config.ini, pointed at the test database and temporary folders."""

    def build(**sections: dict[str, str]) -> Settings:
        root = tmp_path_factory.mktemp("instance")
        overrides: dict[str, dict[str, str]] = {
            "database": {"url": database_url},
            "app": {
                "upload_dir": str(root / "uploads"),
                "data_dir": str(root / "data"),
                "log_dir": str(root / "logs"),
                "secret_key": SECRET_KEY,
            },
            "inference": {"sweep_interval_seconds": SWEEP_INTERVAL_SECONDS},
        }
        for section, values in sections.items():
            overrides.setdefault(section, {}).update(values)
        return load_settings(config_path=PROJECT_ROOT / "config.ini", env={}, overrides=overrides)

    return build


@pytest.fixture
def make_client(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., TestClient]]:
    """A started app of its own, with the given setting overrides; stopped after the test.

    Its default model is the dummy one, which loads at once, unless ``inference`` names another:
    these apps exist to test a setting, not a model.
    """
    clients: list[TestClient] = []

    def build(**sections: dict[str, str]) -> TestClient:
        sections["inference"] = {"default_model": "dummy", **sections.get("inference", {})}
        client = TestClient(create_app(make_settings(**sections)))
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture(scope="session")
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    """The app as it ships (EfficientNet-Lite0 by default), shared by the whole run."""
    with TestClient(create_app(make_settings())) as shared:
        yield shared


def services_of(client: TestClient) -> Services:
    """The long-lived objects (database, store, models, ...) of the app behind a client."""
    services = cast(FastAPI, client.app).state.services
    assert isinstance(services, Services)
    return services


@pytest.fixture(scope="session")
def services(client: TestClient) -> Services:
    """The long-lived objects of the shared app."""
    return services_of(client)


class UserHandle:
    """A registered, logged-in user: their data and the headers that authenticate them."""

    def __init__(self, data: dict[str, Any], token: str) -> None:
        self.data = data
        self.id: int = data["id"]
        self.username: str = data["username"]
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}


def register_and_log_in(client: TestClient, prefix: str = "user") -> UserHandle:
    username = f"{prefix}{next(_user_numbers)}_{uuid.uuid4().hex[:6]}"
    response = client.post(
        "/users/",
        json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    token = client.post("/users/token", data={"username": username, "password": PASSWORD})
    assert token.status_code == 200, token.text
    return UserHandle(response.json(), token.json()["access_token"])


@pytest.fixture
def user(client: TestClient) -> UserHandle:
    return register_and_log_in(client)


@pytest.fixture
def other_user(client: TestClient) -> UserHandle:
    return register_and_log_in(client, prefix="other")


def image_bytes(
    image_format: str = "PNG",
    size: tuple[int, int] = (64, 48),
    color: tuple[int, int, int] = (200, 30, 30),
) -> bytes:
    """A small real image: a colour with a gradient, encoded in the given format."""
    image = Image.new("RGB", size, color)
    for x in range(size[0]):
        image.putpixel((x, 0), (x * 4 % 256, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def upload(
    client: TestClient, owner: UserHandle, data: bytes | None = None, filename: str = "photo.png"
) -> dict[str, Any]:
    response = client.post(
        "/images/upload",
        headers=owner.headers,
        files={
            "file": (
                filename,
                data if data is not None else image_bytes(),
                "application/octet-stream",
            )
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def stored_file(services: Services, image_id: int) -> Path:
    with services.database.read_session() as session:
        row = session.get(ImageRow, image_id)
        assert row is not None
        return services.store.path(row.stored_path)


def receive_json(socket: WebSocketTestSession, timeout: float = 20) -> Any:
    """The next message of a test WebSocket; fails after ``timeout`` seconds instead of hanging.

    A close from the server raises WebSocketDisconnect, as ``socket.receive_json()`` does.
    """
    outcome: queue.Queue[tuple[bool, Any]] = queue.Queue()

    def receive() -> None:
        try:
            outcome.put((True, socket.receive_json()))
        except BaseException as exc:  # handed to the test's thread
            outcome.put((False, exc))

    threading.Thread(target=receive, daemon=True).start()
    try:
        received, value = outcome.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no WebSocket message within {timeout} s") from None
    if not received:
        raise value
    return value


def eventually(check: Callable[[], T | None], *, timeout: float = 20, every: float = 0.02) -> T:
    """Poll ``check`` until it returns something true, and return that; fail after ``timeout``.

    For waiting on a state (a task completed, a line logged), never on the clock alone.
    """
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        time.sleep(every)
    return value
