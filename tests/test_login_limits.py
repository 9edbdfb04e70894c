"""Login limits that hold: per account, per client across accounts, and only for real failures."""

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.conftest import PASSWORD, register_and_log_in


def log_in(client: TestClient, username: str, password: str) -> int:
    response = client.post("/users/token", data={"username": username, "password": password})
    return response.status_code


def test_one_client_trying_many_accounts_is_stopped(make_client: Callable[..., TestClient]) -> None:
    client = make_client(app={"login_max_attempts": "3", "login_max_attempts_per_client": "5"})
    guesses = [log_in(client, f"victim{n}", "password123") for n in range(6)]
    assert guesses == [401] * 5 + [429]
    refused = client.post("/users/token", data={"username": "anyone", "password": "x" * 8})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0


def test_successful_logins_never_use_up_the_client_limit(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(app={"login_max_attempts_per_client": "3"})
    owner = register_and_log_in(client)
    assert [log_in(client, owner.username, PASSWORD) for _ in range(6)] == [200] * 6


def test_a_huge_password_is_a_counted_failure_not_an_error(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(app={"login_max_attempts": "2"})
    owner = register_and_log_in(client)
    huge = "x" * 5000
    assert [log_in(client, owner.username, huge) for _ in range(3)] == [401, 401, 429]


def test_accents_and_case_do_not_make_a_fresh_count(
    make_client: Callable[..., TestClient],
) -> None:
    # MySQL's collation finds the account "abc" for "ÁBC": it must be the same count too.
    client = make_client(app={"login_max_attempts": "2"})
    spellings = ["zoe_user", "ZOE_USER", "zoë_user", "Zoé_User"]
    assert [log_in(client, name, "wrong-password") for name in spellings] == [401, 401, 429, 429]
