"""Async inference end to end: a real server process, real WebSocket clients, crashes and bursts."""

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, select
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from app.database.tables import InferenceTask
from app.services.security import TokenService
from tests.conftest import SECRET_KEY, eventually
from tests.live_server import DUMMY_MODEL, Account, LiveServer, live_server

pytestmark = pytest.mark.live


def unique(prefix: str) -> str:
    return f"{prefix}_{time.monotonic_ns() % 10**9}"


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the tests of this module that do not crash it."""
    root = tmp_path_factory.mktemp("e2e")
    with live_server(database_url=database_url, root=root, settings=DUMMY_MODEL) as running:
        yield running


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


@contextmanager
def open_socket(server: LiveServer, token: str) -> Iterator[ClientConnection]:
    with connect(
        f"ws://127.0.0.1:{server.port}/ws/inference?token={token}", open_timeout=10
    ) as socket:
        greeting = json.loads(socket.recv(timeout=5))
        assert greeting["type"] == "connected"
        yield socket


def updates_until_done(
    socket: ClientConnection, task_id: str, timeout: float = 20
) -> list[dict[str, Any]]:
    """The task_update messages of one task, up to its final status."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(socket.recv(timeout=deadline - time.monotonic()))
        if message.get("task_id") == task_id:
            seen.append(message)
            if message["status"] in ("completed", "failed"):
                return seen
    raise AssertionError(f"no final update for {task_id}: {seen}")


def test_submit_and_get_pushed_processing_and_completed(
    server: LiveServer, http: httpx.Client
) -> None:
    alice = Account(http, unique("alice"))
    with open_socket(server, alice.token) as socket:
        accepted = alice.submit(model_name="dummy").json()
        updates = updates_until_done(socket, accepted["task_id"])
    assert [u["status"] for u in updates] == ["pending", "processing", "completed"]
    final = updates[-1]
    assert set(final) == {
        "type", "task_id", "status", "image_id", "model_name",
        "result_id", "result_url", "error", "timestamp",
    }  # fmt: skip
    assert final["image_id"] == alice.image_id and final["model_name"] == "dummy"
    result = http.get(final["result_url"], headers=alice.headers)
    assert result.status_code == 200
    assert result.json()["id"] == final["result_id"]
    assert alice.task(accepted["task_id"])["status"] == "completed"


def test_every_connection_of_the_owner_and_no_one_else_gets_updates(
    server: LiveServer, http: httpx.Client
) -> None:
    alice, bob = Account(http, unique("alice")), Account(http, unique("bob"))
    with (
        open_socket(server, alice.token) as first,
        open_socket(server, alice.token) as second,
        open_socket(server, bob.token) as eavesdropper,
    ):
        task_id = alice.submit().json()["task_id"]
        for socket in (first, second):
            assert updates_until_done(socket, task_id)[-1]["status"] == "completed"
        # Bob's line is alive but carries nothing of Alice's: his ping is the next thing he gets.
        eavesdropper.send("ping")
        assert eavesdropper.recv(timeout=5) == "pong"


@pytest.mark.parametrize("kind", ["missing", "forged", "expired", "garbage"])
def test_bad_tokens_are_closed_with_1008(server: LiveServer, http: httpx.Client, kind: str) -> None:
    carol = Account(http, unique("carol"))
    user_id = http.get("/users/me", headers=carol.headers).json()["id"]
    tokens = {
        "missing": "",
        "forged": TokenService("some-other-secret-key-entirely-0000000", timedelta(hours=1)).issue(
            user_id=user_id, token_version=0
        ),
        "expired": TokenService(SECRET_KEY, timedelta(seconds=-10)).issue(
            user_id=user_id, token_version=0
        ),
        "garbage": "not.a.token",
    }
    query = f"?token={tokens[kind]}" if kind != "missing" else ""
    url = f"ws://127.0.0.1:{server.port}/ws/inference{query}"
    with connect(url, open_timeout=10) as socket, pytest.raises(ConnectionClosed) as closed:
        socket.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


def test_ping_pong_and_abrupt_disconnects_are_harmless(
    server: LiveServer, http: httpx.Client
) -> None:
    dave = Account(http, unique("dave"))
    with open_socket(server, dave.token) as socket:
        socket.send("ping")
        assert socket.recv(timeout=5) == "pong"
        socket.send(b"\x00binary is ignored")
        socket.send("ping")
        assert socket.recv(timeout=5) == "pong"
        socket.socket.close()  # vanish without a closing handshake
    task_id = dave.submit().json()["task_id"]
    eventually(lambda: dave.task(task_id)["status"] == "completed")
    assert http.get("/health").status_code == 200
    assert "Traceback" not in server.log_file.read_text()
    assert dave.token not in server.log_file.read_text()


def test_tasks_survive_a_crash(database_url: str, tmp_path: Path) -> None:
    # Slow on purpose: one task thread, and the batcher waits 300 ms for company that never
    # comes, so that the crash surely catches most of the twelve tasks unfinished.
    slow = {
        **DUMMY_MODEL,
        "IMGAPI_INFERENCE__TASK_WORKERS": "1",
        "IMGAPI_MODEL.DUMMY__MAX_BATCH_SIZE": "64",
        "IMGAPI_MODEL.DUMMY__MAX_BATCH_DELAY_MS": "300",
    }
    first = LiveServer(database_url=database_url, root=tmp_path, settings=slow)
    first.start()
    try:
        with httpx.Client(base_url=first.base_url, timeout=30) as http:
            erin = Account(http, unique("erin"))
            task_ids = [erin.submit().json()["task_id"] for _ in range(12)]
            eventually(lambda: erin.task(task_ids[0])["status"] == "completed")
        first.kill()
    finally:
        first.stop()  # nothing to do unless the test failed before the crash
    left_unfinished = unfinished_tasks(database_url, task_ids)
    assert left_unfinished  # killed mid-way: some accepted tasks had not run yet

    restarted = LiveServer(database_url=database_url, root=tmp_path, settings=DUMMY_MODEL)
    restarted.start()
    try:
        with httpx.Client(base_url=restarted.base_url, timeout=30) as http:
            erin.http = http

            def all_finished() -> list[dict[str, Any]] | None:
                states = [erin.task(t) for t in task_ids]
                finished = all(s["status"] in ("completed", "failed") for s in states)
                return states if finished else None

            states = eventually(all_finished, timeout=60, every=0.1)
    finally:
        restarted.stop()
    assert all(s["status"] == "completed" and s["result_id"] for s in states), states
    assert f"recovered {len(left_unfinished)} unfinished tasks" in restarted.log_file.read_text()
    # A task the crash caught mid-inference was started twice, and says so.
    by_id = {s["task_id"]: s for s in states}
    for task_id, (status, attempts) in left_unfinished.items():
        assert by_id[task_id]["attempts"] == attempts + 1, (status, by_id[task_id])


def unfinished_tasks(database_url: str, task_ids: list[str]) -> dict[str, tuple[str, int]]:
    """Status and attempts of the given tasks that are not finished, read from the database."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(InferenceTask.id, InferenceTask.status, InferenceTask.attempts).where(
                    InferenceTask.id.in_(task_ids),
                    InferenceTask.status.in_(["pending", "processing"]),
                )
            ).all()
    finally:
        engine.dispose()
    return {row.id: (row.status, row.attempts) for row in rows}


def test_a_burst_of_500_tasks_all_complete_without_starving_sync_requests(
    server: LiveServer, http: httpx.Client
) -> None:
    frank = Account(http, unique("frank"))
    health: list[tuple[int, float]] = []  # status and seconds of each probe
    done = threading.Event()

    def watch_health() -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as probe:
            while not done.is_set():
                started = time.perf_counter()
                status = probe.get("/health").status_code
                health.append((status, time.perf_counter() - started))
                done.wait(0.05)

    with open_socket(server, frank.token) as socket:
        watcher = threading.Thread(target=watch_health)
        watcher.start()
        try:
            with ThreadPoolExecutor(16) as pool:
                responses = list(pool.map(lambda _: frank.submit(), range(500)))
            assert [r.status_code for r in responses] == [202] * 500, {r.text for r in responses}
            expected = {r.json()["task_id"] for r in responses}
            final: dict[str, dict[str, Any]] = {}
            deadline = time.monotonic() + 180
            while final.keys() != expected:
                message = json.loads(socket.recv(timeout=deadline - time.monotonic()))
                if message.get("status") in ("completed", "failed"):
                    final[message["task_id"]] = message
            sync = http.post(
                "/images/inference", headers=frank.headers, json={"image_id": frank.image_id}
            )
        finally:
            done.set()
            watcher.join()
    failed = [message for message in final.values() if message["status"] != "completed"]
    assert not failed, f"{len(failed)} of 500 failed, e.g. {failed[0]}"
    assert sync.status_code == 200
    # /health answered throughout; how fast is the benchmark's business (bench/).
    assert health and all(status == 200 for status, _ in health), health
    slowest = max(seconds for _, seconds in health)
    print(f"/health during the burst: {len(health)} probes, slowest {slowest:.3f} s")
