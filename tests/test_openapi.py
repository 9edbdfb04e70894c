"""The OpenAPI description that Swagger UI and ReDoc show: every error answer is documented."""

from typing import Any

from fastapi.testclient import TestClient

PUBLIC = {("post", "/users/"), ("post", "/users/token"), ("get", "/health")}


def operations(client: TestClient) -> dict[tuple[str, str], dict[str, Any]]:
    spec: dict[str, Any] = client.get("/openapi.json").json()
    return {
        (method, path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    }


def test_every_route_documents_its_errors_with_the_error_body(client: TestClient) -> None:
    for (method, path), operation in operations(client).items():
        errors = {code: r for code, r in operation["responses"].items() if int(code) >= 400}
        assert errors, f"{method} {path} documents no error answer"
        if (method, path) not in PUBLIC:
            assert "401" in errors, f"{method} {path} does not document 401"
        for code, response in errors.items():
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, code)


def test_validation_errors_are_documented_as_they_are_answered(client: TestClient) -> None:
    upload = operations(client)[("post", "/images/upload")]
    assert "validation_error" in upload["responses"]["422"]["description"]
    answered = client.post("/users/", json={"username": "x"})
    assert answered.status_code == 422
    assert set(answered.json()) == {"detail", "code"}
