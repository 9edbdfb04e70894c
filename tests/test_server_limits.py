"""`python main.py` bounds what one client can make it hold: the request head, and silence."""

import io
import json
import os
import socket
import threading
import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest
from PIL import Image
from websockets.sync.client import connect

from tests.live_server import Account, LiveServer, live_server

pytestmark = pytest.mark.live

IDLE_TIMEOUT_SECONDS = 1
HEAD_LIMIT = 32 * 1024
MAX_CONNECTIONS = 20


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = {
        "IMGAPI_INFERENCE__DEFAULT_MODEL": "dummy",
        "IMGAPI_SERVER__REQUEST_IDLE_TIMEOUT": str(IDLE_TIMEOUT_SECONDS),
        "IMGAPI_SERVER__MAX_HEAD_BYTES": str(HEAD_LIMIT),
        "IMGAPI_APP__LOGIN_MAX_ATTEMPTS": "3",
        "IMGAPI_SERVER__MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    root = tmp_path_factory.mktemp("limits")
    with live_server(database_url=database_url, root=root, settings=settings) as running:
        yield running


def raw_exchange(server: LiveServer, data: bytes) -> bytes:
    """Send bytes on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as connection:
        connection.sendall(data)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
        return received


def test_a_head_over_the_limit_is_refused_with_431(server: LiveServer) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * (HEAD_LIMIT + 1024)
    answer = raw_exchange(server, head)
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 431 ")
    assert b"x-content-type-options: nosniff" in status.lower()
    assert json.loads(body)["code"] == "request_header_fields_too_large"


def test_too_many_header_lines_are_refused(server: LiveServer) -> None:
    lines = b"".join(b"X-H%d: v\r\n" % n for n in range(150))
    answer = raw_exchange(server, b"GET /health HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_a_huge_header_is_cut_short_and_others_are_served_meanwhile(server: LiveServer) -> None:
    sent = 0
    refused = threading.Event()

    def send_64_mb() -> None:
        nonlocal sent
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as connection:
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
            chunk = b"a" * 65536
            try:
                for _ in range(1024):
                    connection.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                refused.set()

    sender = threading.Thread(target=send_64_mb)
    sender.start()
    with httpx.Client(base_url=server.base_url, timeout=20) as http:
        health = [http.get("/health").status_code for _ in range(5)]
    sender.join(30)
    assert health == [200] * 5
    assert refused.is_set() and sent < 64 * 1024 * 1024


@pytest.mark.parametrize(
    "partial",
    [b"", b"GET /health HTTP/1.1\r\nHost: x\r\n", b"POST /users/ HTTP/1.1\r\nHost: x\r\n"
     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\":"],
    ids=["nothing", "half a head", "half a body"],
)  # fmt: skip
def test_a_connection_that_stops_mid_request_is_closed(server: LiveServer, partial: bytes) -> None:
    # raw_exchange returns only once the server has closed the connection (or fails at 20 s).
    assert raw_exchange(server, partial) == b""


def test_a_quiet_websocket_outlives_the_idle_timeout(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=20) as http:
        account = Account(http, "quiet_socket")
    url = f"ws://127.0.0.1:{server.port}/ws/inference?token={account.token}"
    with connect(url, open_timeout=10) as websocket:
        assert json.loads(websocket.recv(timeout=5))["type"] == "connected"
        # Quiet for twice the idle timeout of a plain request (time passing is the point
        # here, not an order of events): the socket must stay open.
        time.sleep(2 * IDLE_TIMEOUT_SECONDS)
        websocket.send("ping")
        assert websocket.recv(timeout=5) == "pong"


def test_normal_requests_and_keep_alive_are_unaffected(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=20) as http:
        assert all(http.get("/health").status_code == 200 for _ in range(3))
        big_but_allowed = {"X-Padding": "a" * (HEAD_LIMIT // 2)}
        assert http.get("/health", headers=big_but_allowed).status_code == 200


def test_a_body_many_times_the_head_limit_is_no_head(server: LiveServer) -> None:
    noise = Image.frombytes("RGB", (300, 300), os.urandom(300 * 300 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    assert buffer.tell() > 8 * HEAD_LIMIT
    with httpx.Client(base_url=server.base_url, timeout=20) as http:
        account = Account(http, "big_body")
        uploaded = http.post(
            "/images/upload",
            headers=account.headers,
            files={"file": ("noise.png", buffer.getvalue())},
        )
    assert uploaded.status_code == 201, uploaded.text


def test_a_forwarded_for_header_does_not_change_whose_attempts_count(server: LiveServer) -> None:
    # No proxy is configured: X-Forwarded-For from a local client is nobody's word.
    with httpx.Client(base_url=server.base_url, timeout=20) as http:
        statuses = [
            http.post(
                "/users/token",
                data={"username": "forwarded_victim", "password": "wrong-password"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            ).status_code
            for n in range(4)
        ]
    assert statuses == [401, 401, 401, 429]


def test_a_head_over_the_limit_in_one_read_is_refused_too(server: LiveServer) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * (HEAD_LIMIT + 1024)
    assert raw_exchange(server, head + b"\r\n\r\n").startswith(b"HTTP/1.1 4")


def trickle(server: LiveServer, first: bytes, then: bytes, interval: float) -> tuple[int, bytes]:
    """Send ``first``, then ``then`` a byte every ``interval`` s (time passing is the point):
    how many of those bytes went out before the server closed, and what it answered."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as connection:
        connection.sendall(first)
        sent = 0
        try:
            for byte in then:
                connection.sendall(bytes([byte]))
                sent += 1
                time.sleep(interval)
        except OSError:
            pass
        connection.settimeout(5)
        try:
            return sent, connection.recv(1024)
        except ConnectionResetError:
            return sent, b""


def test_a_head_trickled_byte_by_byte_meets_a_deadline(server: LiveServer) -> None:
    # Never silent for long, never done: one byte every 0.2 s, for at most 20 s.
    sent, answer = trickle(server, b"", b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 100, 0.2)
    assert answer == b""  # closed, not answered
    assert sent < 50  # after about IDLE_TIMEOUT_SECONDS of trickle, not at the end


def test_connections_past_the_limit_get_503_not_a_dead_server(server: LiveServer) -> None:
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(MAX_CONNECTIONS)]
    try:
        with httpx.Client(base_url=server.base_url, timeout=20) as http:
            assert http.get("/health").status_code == 503
    finally:
        for connection in idle:
            connection.close()
    with httpx.Client(base_url=server.base_url, timeout=20) as http:
        assert eventually_ok(http)


def eventually_ok(http: httpx.Client) -> bool:
    deadline = time.monotonic() + 10
    while http.get("/health").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return True


def test_a_body_trickled_byte_by_byte_is_cut_off(server: LiveServer) -> None:
    head = (
        b"POST /users/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10000\r\n\r\n"
    )
    # Never silent for long, never done: one byte every 0.1 s, for at most 10 s.
    sent, answer = trickle(server, head, b" " * 100, 0.1)
    assert answer == b""  # closed, not answered
    assert sent < 60  # after a window or two of IDLE_TIMEOUT_SECONDS, not at the end
