"""The service's plumbing: request ids, JSON errors for any route, the schema in step."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient

from app.container import Services
from app.database.tables import Base


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    first = client.get("/health")
    second = client.get("/health")
    assert len(first.headers["X-Request-ID"]) == 32
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]
    unsafe = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["X-Request-ID"] != "bad id\twith spaces"


def test_unknown_route_is_a_json_404(client: TestClient) -> None:
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found", "code": "not_found"}
    assert client.patch("/users/me").json()["code"] == "method_not_allowed"


def test_migrations_match_the_orm_tables(services: Services) -> None:
    with services.database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_mysql_tables_are_innodb_utf8mb4(services: Services) -> None:
    engine = services.database.engine
    if engine.dialect.name != "mysql":
        pytest.skip("MySQL only")
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE()"
        ).all()
    found = {name: (engine_name, collation.split("_")[0]) for name, engine_name, collation in rows}
    # Every table of the ORM, and whatever else the migrations made (their own version table).
    assert set(Base.metadata.tables) <= set(found)
    assert found == dict.fromkeys(found, ("InnoDB", "utf8mb4"))
