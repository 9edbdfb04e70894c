"""The service as a user runs it: `python main.py`, real HTTP, logs on disk, schema in step."""

from pathlib import Path

import httpx2 as httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.container import Services
from app.database.tables import Base
from tests.conftest import PASSWORD, image_bytes
from tests.live_server import live_server


def test_readme_flow_against_a_running_server(database_url: str, tmp_path: Path) -> None:
    with (
        live_server(database_url=database_url, root=tmp_path) as server,
        httpx.Client(base_url=server.base_url) as http,
    ):
        registered = http.post(
            "/users/",
            json={"username": "readme_user", "email": "readme@example.com", "password": PASSWORD},
        )
        assert registered.status_code == 201
        login = http.post("/users/token", data={"username": "readme_user", "password": PASSWORD})
        token = login.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "readme-flow-1"}
        image = http.post(
            "/images/upload", headers=headers, files={"file": ("image.jpg", image_bytes("JPEG"))}
        )
        assert image.status_code == 201
        assert image.headers["X-Request-ID"] == "readme-flow-1"
        result = http.post(
            "/images/inference", headers=headers, json={"image_id": image.json()["id"]}
        )
        assert result.status_code == 200
        assert http.get("/docs").status_code == 200
        assert "/images/inference" in http.get("/openapi.json").json()["paths"]

    log = server.log_file.read_text()
    assert "[readme-flow-1] app.requests: POST /images/upload 201" in log
    assert PASSWORD not in log
    assert token not in log


def test_every_response_carries_a_request_id(client) -> None:  # type: ignore[no-untyped-def]
    first = client.get("/health")
    second = client.get("/health")
    assert len(first.headers["X-Request-ID"]) == 32
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]
    unsafe = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["X-Request-ID"] != "bad id\twith spaces"


def test_unknown_route_is_a_json_404(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found", "code": "not_found"}
    assert client.patch("/users/me").json()["code"] == "method_not_allowed"


def test_migrations_match_the_orm_tables(services: Services) -> None:
    with services.database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


@pytest.mark.parametrize("table", ["users", "images", "inference_results"])
def test_mysql_tables_are_innodb_utf8mb4(services: Services, table: str) -> None:
    engine = services.database.engine
    if engine.dialect.name != "mysql":
        pytest.skip("MySQL only")
    with engine.connect() as connection:
        row = connection.exec_driver_sql(
            "SELECT ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        ).one()
    assert row[0] == "InnoDB"
    assert row[1].startswith("utf8mb4")
