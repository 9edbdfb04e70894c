"""A MariaDB that freezes or goes away: clean 503s meanwhile, full service afterwards.

The database sits behind a TCP proxy the test starts, freezes (SIGSTOP: connections stay open,
nothing is answered) and kills; the shared MariaDB itself is never touched.
"""

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx2 as httpx
import pytest
from sqlalchemy.engine import make_url
from websockets.sync.client import connect

from tests.conftest import PASSWORD
from tests.live_server import Account, LiveServer, live_server
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.live

T = TypeVar("T")
TIMEOUT_SECONDS = 2


@pytest.fixture
def proxy(database_url: str) -> Iterator[TcpProxy]:
    url = make_url(database_url)
    if url.get_backend_name() != "mysql":
        pytest.skip("a database on the network: MySQL/MariaDB only")
    running = TcpProxy(url.host or "127.0.0.1", url.port or 3306)
    running.start()
    yield running
    running.kill()


@pytest.fixture
def server(database_url: str, proxy: TcpProxy, tmp_path: Path) -> Iterator[LiveServer]:
    through_proxy = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    settings = {
        "IMGAPI_INFERENCE__DEFAULT_MODEL": "dummy",
        "IMGAPI_DATABASE__TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
        "IMGAPI_APP__LOGIN_MAX_ATTEMPTS": "2",
    }
    with live_server(
        database_url=through_proxy.render_as_string(hide_password=False),
        root=tmp_path,
        settings=settings,
    ) as running:
        yield running


def eventually(check: Callable[[], T | None], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while (value := check()) is None:
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)
    return value


def test_a_frozen_database_gives_503_not_a_hang_then_recovers(
    server: LiveServer, proxy: TcpProxy
) -> None:
    # The client's own timeout is the "never hangs" bound: far above the configured one.
    with httpx.Client(base_url=server.base_url, timeout=8 * TIMEOUT_SECONDS) as http:
        alice = Account(http, "frozen_alice")
        proxy.freeze()
        try:
            logins = [
                http.post("/users/token", data={"username": "frozen_alice", "password": PASSWORD})
                for _ in range(3)
            ]
            answers = [
                *logins,
                http.get("/health"),
                http.get("/images/", headers=alice.headers),
                http.post(
                    "/images/inference", headers=alice.headers, json={"image_id": alice.image_id}
                ),
            ]
        finally:
            proxy.thaw()
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert int(answer.headers["Retry-After"]) > 0
        # Once one request found the database silent, the next ones were refused at once
        # rather than each waiting out its own timeouts.
        assert any("did not answer just now" in answer.text for answer in answers)
        eventually(lambda: http.get("/health").status_code == 200 or None)
        # Logins the outage refused with 503 did not count as failures: no lockout now.
        login = http.post("/users/token", data={"username": "frozen_alice", "password": PASSWORD})
        assert login.status_code == 200, login.text
        listed = http.get("/images/", headers=alice.headers)
        assert listed.status_code == 200 and listed.json()[0]["id"] == alice.image_id


def test_tasks_accepted_before_an_outage_all_complete_after_it(
    database_url: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    through_proxy = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    settings = {
        "IMGAPI_INFERENCE__DEFAULT_MODEL": "dummy",
        "IMGAPI_DATABASE__TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
        "IMGAPI_INFERENCE__SWEEP_INTERVAL_SECONDS": "1",
        "IMGAPI_INFERENCE__STUCK_AFTER_SECONDS": "1",
        # Batches wait for company, so that the outage finds tasks at every step.
        "IMGAPI_MODEL.DUMMY__MAX_BATCH_DELAY_MS": "200",
        "IMGAPI_INFERENCE__TASK_WORKERS": "4",
    }
    url = through_proxy.render_as_string(hide_password=False)
    with (
        live_server(database_url=url, root=tmp_path, settings=settings) as server,
        httpx.Client(base_url=server.base_url, timeout=8 * TIMEOUT_SECONDS) as http,
    ):
        bob = Account(http, "outage_bob")
        with connect(
            f"ws://127.0.0.1:{server.port}/ws/inference?token={bob.token}", open_timeout=10
        ) as socket:
            assert json.loads(socket.recv(timeout=5))["type"] == "connected"
            accepted = [bob.submit().json()["task_id"] for _ in range(30)]
            proxy.kill()  # the database is gone, with tasks queued, running and finishing
            time.sleep(2 * TIMEOUT_SECONDS)  # the outage lasts: time passing is the point
            proxy.start()
            final: dict[str, str] = {}
            deadline = time.monotonic() + 90
            while len(final) < len(accepted):
                message = json.loads(socket.recv(timeout=deadline - time.monotonic()))
                if message.get("status") in ("completed", "failed"):
                    final[message["task_id"]] = message["status"]
        assert final == dict.fromkeys(accepted, "completed")
        for task_id in accepted:
            task = bob.task(task_id)
            assert task["status"] == "completed" and task["result_id"], task
