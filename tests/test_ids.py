"""Ids are never handed out twice, so nothing meant for a deleted row reaches a newer one."""

import threading
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, delete, select, text

from app.container import Services
from app.database.engine import create_db_engine
from app.database.migrate import upgrade_schema
from app.database.tables import User
from app.models.model_interface import MODEL_REGISTRY
from tests import gated_model
from tests.conftest import UserHandle, image_bytes, upload


def test_the_id_of_a_deleted_newest_image_goes_to_no_one_else(
    client: TestClient, user: UserHandle, other_user: UserHandle
) -> None:
    newest = upload(client, user)
    assert client.delete(f"/images/{newest['id']}", headers=user.headers).status_code == 204
    others = upload(client, other_user)
    assert others["id"] > newest["id"]
    assert client.get(f"/images/{newest['id']}", headers=user.headers).status_code == 404


def test_the_id_of_a_deleted_newest_user_goes_to_no_one_else(services: Services) -> None:
    def add_user(name: str) -> int:
        with services.database.session() as session:
            row = User(username=name, email=f"{name}@example.com", hashed_password="-")
            session.add(row)
            session.commit()
            return row.id

    gone = add_user("deleted_newest")
    with services.database.session() as session:
        session.execute(delete(User).where(User.id == gone))
        session.commit()
    assert add_user("next_newest") > gone


def test_a_result_finished_after_its_image_was_deleted_goes_nowhere(
    client: TestClient, user: UserHandle, other_user: UserHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(MODEL_REGISTRY, "gated", "tests.gated_model:GatedModel")
    gated_model.reset()
    image = upload(client, user)
    answers: list[int] = []

    def infer() -> None:
        body = {"image_id": image["id"], "model_name": "gated"}
        answers.append(
            client.post("/images/inference", headers=user.headers, json=body).status_code
        )

    request = threading.Thread(target=infer)
    request.start()
    try:
        assert gated_model.entered.wait(20)  # the model is running on the image now
        assert client.delete(f"/images/{image['id']}", headers=user.headers).status_code == 204
        newer = upload(client, other_user, image_bytes(color=(0, 0, 250)))
    finally:
        gated_model.gate.set()
        request.join(20)
    assert answers == [404]
    assert newer["id"] != image["id"]
    assert client.get(f"/images/{newer['id']}", headers=other_user.headers).json()["results"] == []


def test_the_migration_keeps_every_row_and_stops_sqlite_reusing_ids(
    database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("rebuilds SQLite tables; MySQL's AUTO_INCREMENT never reused ids")
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = create_engine(url)
    with old.begin() as connection:
        connection.execute(text("PRAGMA foreign_keys=ON"))
        for statement in OLD_SCHEMA_AND_ROWS:
            connection.execute(text(statement))
    old.dispose()

    engine = create_db_engine(url, pool_size=1, pool_recycle=60)
    upgrade_schema(engine)
    with engine.connect() as connection:
        counts = {
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for table in ("users", "images", "inference_results", "inference_tasks")
        }
        # Case-insensitive names survive the rebuild.
        found = connection.execute(select(User.id).where(User.username == "ALICE")).scalar()
    assert counts == {"users": 2, "images": 2, "inference_results": 1, "inference_tasks": 1}
    assert found == 1
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM images WHERE id = 4"))
        connection.execute(text(INSERT_IMAGE.format(id="NULL", path="new")))
        newest = connection.execute(text("SELECT max(id) FROM images")).scalar()
    engine.dispose()
    assert newest == 5


INSERT_IMAGE = (
    "INSERT INTO images (id, owner_id, filename, stored_path, content_type, format, width, "
    "height, size, sha256, created_at) VALUES ({id}, 2, 'a.png', '{path}', 'image/png', 'PNG', "
    "1, 1, 1, 'x', '2026-01-01 00:00:00')"
)
# The schema of revision 0002 (before AUTOINCREMENT), with a few rows of every kind.
OLD_SCHEMA_AND_ROWS = [
    """CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)""",
    """INSERT INTO alembic_version VALUES ('0002')""",
    """CREATE TABLE users (id INTEGER NOT NULL, username VARCHAR(50) COLLATE "NOCASE" NOT NULL,
    email VARCHAR(255) COLLATE "NOCASE" NOT NULL, hashed_password VARCHAR(255) NOT NULL,
    token_version INTEGER NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL,
    PRIMARY KEY (id), UNIQUE (email), UNIQUE (username))""",
    """CREATE TABLE images (id INTEGER NOT NULL, owner_id INTEGER NOT NULL,
    filename VARCHAR(255) NOT NULL, stored_path VARCHAR(512) NOT NULL,
    content_type VARCHAR(50) NOT NULL, format VARCHAR(10) NOT NULL, width INTEGER NOT NULL,
    height INTEGER NOT NULL, size BIGINT NOT NULL, sha256 VARCHAR(64) NOT NULL,
    created_at DATETIME NOT NULL, PRIMARY KEY (id),
    FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE, UNIQUE (stored_path))""",
    """CREATE INDEX ix_images_owner_created ON images (owner_id, created_at, id)""",
    """CREATE TABLE inference_results (id INTEGER NOT NULL, image_id INTEGER NOT NULL,
    owner_id INTEGER NOT NULL, model_name VARCHAR(100) NOT NULL,
    model_version VARCHAR(50) NOT NULL, label VARCHAR(255) NOT NULL, confidence DOUBLE NOT NULL,
    predictions JSON NOT NULL, processing_time_ms DOUBLE NOT NULL, created_at DATETIME NOT NULL,
    PRIMARY KEY (id), FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE CASCADE,
    FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE)""",
    """CREATE INDEX ix_inference_results_image_id ON inference_results (image_id)""",
    """CREATE INDEX ix_results_owner_created ON inference_results (owner_id, created_at)""",
    """CREATE TABLE inference_tasks (id VARCHAR(36) NOT NULL, owner_id INTEGER NOT NULL,
    image_id INTEGER NOT NULL, model_name VARCHAR(100) NOT NULL, status VARCHAR(20) NOT NULL,
    result_id INTEGER, error TEXT, attempts INTEGER NOT NULL, created_at DATETIME NOT NULL,
    started_at DATETIME, finished_at DATETIME, PRIMARY KEY (id),
    FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE,
    FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE CASCADE,
    FOREIGN KEY(result_id) REFERENCES inference_results (id) ON DELETE SET NULL)""",
    """CREATE INDEX ix_inference_tasks_image_id ON inference_tasks (image_id)""",
    """CREATE INDEX ix_tasks_owner_created ON inference_tasks (owner_id, created_at)""",
    """CREATE INDEX ix_tasks_status_created ON inference_tasks (status, created_at)""",
    """INSERT INTO users VALUES (1, 'alice', 'alice@example.com', '-', 0,
    '2026-01-01 00:00:00', '2026-01-01 00:00:00')""",
    """INSERT INTO users VALUES (2, 'bob', 'bob@example.com', '-', 0,
    '2026-01-01 00:00:00', '2026-01-01 00:00:00')""",
    INSERT_IMAGE.format(id=3, path="three"),
    INSERT_IMAGE.format(id=4, path="four"),
    """INSERT INTO inference_results VALUES (7, 3, 2, 'dummy', '1.0', 'red', 0.9, '[]', 1.0,
    '2026-01-01 00:00:00')""",
    """INSERT INTO inference_tasks VALUES ('t-1', 2, 3, 'dummy', 'completed', 7, NULL, 1,
    '2026-01-01 00:00:00', NULL, NULL)""",
]


def test_a_task_id_is_each_owners_own(
    client: TestClient, user: UserHandle, other_user: UserHandle
) -> None:
    chosen = str(uuid.uuid4())
    mine = upload(client, user)
    theirs = upload(client, other_user)

    def submit(owner: UserHandle, image_id: int) -> int:
        body = {"image_id": image_id, "model_name": "dummy", "task_id": chosen}
        return client.post("/images/inference/async", headers=owner.headers, json=body).status_code

    assert submit(user, mine["id"]) == 202
    # Another user's id tells nothing: the same one is simply theirs too.
    assert submit(other_user, theirs["id"]) == 202
    assert submit(user, mine["id"]) == 409  # the owner's own duplicate still is one
    for owner, image in ((user, mine), (other_user, theirs)):
        task = client.get(f"/images/inference/tasks/{chosen}", headers=owner.headers).json()
        assert task["image_id"] == image["id"]
