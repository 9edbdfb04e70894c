"""Registering, logging in and managing your account, as a client of the HTTP API would."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from jose import jwt

from app.container import Services
from app.database.tables import User
from app.services import users
from app.services.security import TokenService
from tests.conftest import PASSWORD, SECRET_KEY, UserHandle, register_and_log_in


def test_register_log_in_and_read_me(client: TestClient) -> None:
    response = client.post(
        "/users/",
        json={
            "username": "alice_flow",
            "email": "Alice.Flow@Example.com",
            "password": "s3cret-pass",
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "alice_flow"
    assert body["email"] == "alice.flow@example.com"
    assert "password" not in str(body) and "hash" not in str(body)
    assert body["created_at"].endswith(("Z", "+00:00"))

    token = client.post("/users/token", data={"username": "alice_flow", "password": "s3cret-pass"})
    assert token.status_code == 200
    assert token.json()["token_type"] == "bearer"
    me = client.get(
        "/users/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["id"] == body["id"]


def test_token_subject_is_the_user_id(client: TestClient, user: UserHandle) -> None:
    claims = jwt.get_unverified_claims(user.token)
    assert claims["sub"] == str(user.id)
    assert "exp" in claims
    assert user.username not in str(claims)


@pytest.mark.parametrize("field", ["username", "email"])
def test_taken_username_or_email_is_a_conflict(
    client: TestClient, user: UserHandle, field: str
) -> None:
    fresh = {"username": "fresh_name_x", "email": "fresh_x@example.com", "password": PASSWORD}
    fresh[field] = user.data[field].upper()  # taken regardless of case
    response = client.post("/users/", json=fresh)
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "bob_short", "email": "bob@example.com", "password": "short"},
        {"username": "bob_mail", "email": "not-an-email", "password": PASSWORD},
        {"username": "b", "email": "b@example.com", "password": PASSWORD},
        {"username": "bad name!", "email": "bn@example.com", "password": PASSWORD},
        {"username": "no_password", "email": "np@example.com"},
    ],
)
def test_invalid_registration_is_422(client: TestClient, payload: dict[str, str]) -> None:
    response = client.post("/users/", json=payload)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert isinstance(body["detail"], list)


def test_wrong_password_or_unknown_user_is_401(client: TestClient, user: UserHandle) -> None:
    for username, password in ((user.username, "wrong-password"), ("nobody_here", PASSWORD)):
        response = client.post("/users/token", data={"username": username, "password": password})
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json() == {
            "detail": "incorrect username or password",
            "code": "not_authenticated",
        }


def test_login_is_case_insensitive_for_the_username(client: TestClient, user: UserHandle) -> None:
    response = client.post(
        "/users/token", data={"username": user.username.upper(), "password": PASSWORD}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
)
def test_me_without_a_valid_token_is_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/users/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["code"] == "not_authenticated"


def test_forged_and_expired_tokens_are_refused(
    client: TestClient, services: Services, user: UserHandle
) -> None:
    forged = jwt.encode(
        {"sub": str(user.id), "ver": 0, "exp": 4102444800}, "not-the-key", algorithm="HS256"
    )
    unsigned = jwt.encode({"sub": str(user.id), "ver": 0, "exp": 4102444800}, "", algorithm="HS256")
    expired = TokenService(SECRET_KEY, timedelta(seconds=-5)).issue(
        user_id=user.id, token_version=0
    )
    for token in (forged, unsigned, expired):
        response = client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401


def test_update_me(client: TestClient, user: UserHandle) -> None:
    response = client.put(
        "/users/me",
        headers=user.headers,
        json={"username": user.username + "_new", "email": "New@Example.org"},
    )
    assert response.status_code == 200
    assert response.json()["username"] == user.username + "_new"
    assert response.json()["email"] == "new@example.org"
    # The token still works after a change that is not the password.
    assert client.get("/users/me", headers=user.headers).status_code == 200


def test_password_change_invalidates_older_tokens(client: TestClient, user: UserHandle) -> None:
    response = client.put(
        "/users/me", headers=user.headers, json={"password": "a-brand-new-password"}
    )
    assert response.status_code == 200
    assert client.get("/users/me", headers=user.headers).status_code == 401
    assert (
        client.post(
            "/users/token", data={"username": user.username, "password": PASSWORD}
        ).status_code
        == 401
    )
    fresh = client.post(
        "/users/token", data={"username": user.username, "password": "a-brand-new-password"}
    )
    assert fresh.status_code == 200
    assert (
        client.get(
            "/users/me", headers={"Authorization": f"Bearer {fresh.json()['access_token']}"}
        ).status_code
        == 200
    )


def test_update_to_a_taken_name_is_a_conflict(
    client: TestClient, user: UserHandle, other_user: UserHandle
) -> None:
    for change in ({"username": other_user.username}, {"email": other_user.data["email"]}):
        response = client.put("/users/me", headers=user.headers, json=change)
        assert response.status_code == 409
    assert client.get("/users/me", headers=user.headers).json()["username"] == user.username


@pytest.mark.parametrize("change", [{"password": "short"}, {"email": "nope"}, {"is_admin": True}])
def test_invalid_update_is_422(
    client: TestClient, user: UserHandle, change: dict[str, object]
) -> None:
    assert client.put("/users/me", headers=user.headers, json=change).status_code == 422


def test_repeated_failed_logins_are_rate_limited(make_client: Callable[..., TestClient]) -> None:
    limited = make_client(app={"login_max_attempts": "3", "login_window_seconds": "60"})
    victim = register_and_log_in(limited, prefix="victim")
    for _ in range(3):
        assert (
            limited.post(
                "/users/token", data={"username": victim.username, "password": "guess"}
            ).status_code
            == 401
        )
    blocked = limited.post("/users/token", data={"username": victim.username, "password": PASSWORD})
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) >= 1
    assert blocked.json()["code"] == "too_many_requests"
    # Other accounts are not affected.
    assert register_and_log_in(limited, prefix="bystander").token


def test_guesses_sent_at_once_cannot_outrun_the_rate_limit(
    make_client: Callable[..., TestClient],
) -> None:
    limited = make_client(app={"login_max_attempts": "3", "login_window_seconds": "60"})
    victim = register_and_log_in(limited, prefix="swarmed")
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(
                lambda _: (
                    limited.post(
                        "/users/token", data={"username": victim.username, "password": "guess"}
                    ).status_code
                ),
                range(8),
            )
        )
    # The fixture's successful login reset the count: 3 guesses get checked, 5 are refused.
    assert sorted(statuses) == [401] * 3 + [429] * 5


def test_a_login_does_not_hold_the_database_while_the_password_is_checked(
    client: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = register_and_log_in(client, prefix="locker")
    checking, may_finish = threading.Event(), threading.Event()

    def held_check(password: str) -> None:
        """The password check of an unknown user, held until the test lets it finish."""
        checking.set()
        assert may_finish.wait(20)

    def write() -> None:
        with services.database.session() as session:  # a writer: on SQLite, BEGIN IMMEDIATE
            session.get(User, owner.id)
            session.commit()

    monkeypatch.setattr(users, "burn_password_check", held_check)
    with ThreadPoolExecutor(2) as pool:
        login = pool.submit(
            client.post, "/users/token", data={"username": "nobody_x", "password": PASSWORD}
        )
        try:
            assert checking.wait(20)
            # While the check runs, a writer gets through (it would wait for the login if the
            # login held a transaction).
            pool.submit(write).result(timeout=10)
        finally:
            may_finish.set()
        assert login.result().status_code == 401
