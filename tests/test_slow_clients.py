"""Clients that read slowly must not hold resources that every other request needs."""

import io
import socket
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import PASSWORD
from tests.live_server import DUMMY_MODEL, live_server

pytestmark = pytest.mark.live


def noise_bmp(side: int) -> bytes:
    """An uncompressed image of random pixels: 3 bytes a pixel, quick to make and to check."""
    pixels = np.random.default_rng(1).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="BMP")
    return buffer.getvalue()


def test_downloads_that_are_not_read_do_not_starve_other_requests(
    database_url: str, tmp_path: Path
) -> None:
    # Few pooled connections (one, plus two overflow; the old code kept 15): 16 downloads would
    # take them all if a response still held its database session while its client reads.
    settings = {**DUMMY_MODEL, "IMGAPI_DATABASE__POOL_SIZE": "1"}
    with (
        live_server(database_url=database_url, root=tmp_path, settings=settings) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as http,
    ):
        http.post(
            "/users/",
            json={"username": "slowpoke", "email": "slow@example.com", "password": PASSWORD},
        )
        token = http.post(
            "/users/token", data={"username": "slowpoke", "password": PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        big = noise_bmp(1400)  # about 6 MB: more than the socket buffers hold
        image_id = http.post(
            "/images/upload", headers=headers, files={"file": ("big.bmp", big)}
        ).json()["id"]

        stalled = []
        try:
            for _ in range(16):
                connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                request = (
                    f"GET /images/{image_id}/file HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Bearer {token}\r\n\r\n"
                )
                connection.sendall(request.encode())
                stalled.append(connection)
                # The answer has begun: its route has run. Then the client stops reading.
                assert connection.recv(12) == b"HTTP/1.1 200"
            # Each would fail with a timeout if the stalled downloads held the pool.
            me = http.get("/users/me", headers=headers, timeout=10)
            health = http.get("/health", timeout=10)
        finally:
            for connection in stalled:
                connection.close()
    assert me.status_code == 200
    assert health.status_code == 200
