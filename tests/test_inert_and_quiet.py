"""Downloads are inert, errors and logs give nothing away, and no client can forge a log line."""

import logging
import os
import stat
from pathlib import Path

from fastapi.testclient import TestClient

from app.container import Services
from app.middleware import SECURITY_HEADERS
from app.utils.logging_config import DailyAndSizeRotatingFileHandler
from tests.conftest import UserHandle, image_bytes, upload


def log_file() -> Path:
    """The file logs go to now: that of the app created last (logging is per process)."""
    [handler] = [
        h for h in logging.getLogger().handlers if isinstance(h, DailyAndSizeRotatingFileHandler)
    ]
    return Path(handler.baseFilename)


def test_every_answer_carries_the_security_headers(client: TestClient, user: UserHandle) -> None:
    for response in (
        client.get("/health"),
        client.get("/docs"),
        client.get("/images/", headers=user.headers),
        client.get("/images/", headers={"Authorization": "Bearer nonsense"}),
    ):
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (response.url, name)


def test_a_download_is_named_for_what_it_is(client: TestClient, user: UserHandle) -> None:
    disguised = upload(client, user, image_bytes("JPEG"), filename="page.html")
    honest = upload(client, user, image_bytes("JPEG"), filename="holiday.JPEG")
    nameless = upload(client, user, image_bytes("PNG"), filename=".png.exe")
    expected = {
        disguised["id"]: "page.jpg",
        honest["id"]: "holiday.JPEG",
        nameless["id"]: ".png.png",
    }
    for image_id, name in expected.items():
        response = client.get(f"/images/{image_id}/file", headers=user.headers)
        assert response.status_code == 200
        assert response.headers["content-disposition"] == f'attachment; filename="{name}"'
        assert response.headers["x-content-type-options"] == "nosniff"
    assert (
        client.get(f"/images/{disguised['id']}/file", headers=user.headers).headers["content-type"]
        == "image/jpeg"
    )


def test_a_rejected_password_is_never_echoed(client: TestClient) -> None:
    secret = "sh0rt!"
    too_short = client.post(
        "/users/", json={"username": "echo_test", "email": "echo@example.com", "password": secret}
    )
    missing_email = client.post("/users/", json={"username": "echo_test", "password": secret * 3})
    for response in (too_short, missing_email):
        assert response.status_code == 422
        assert secret not in response.text
    [error] = too_short.json()["detail"]
    assert error["loc"] == ["body", "password"] and error["input"] == "[hidden]"


def test_two_file_parts_in_one_upload_are_refused(client: TestClient, user: UserHandle) -> None:
    response = client.post(
        "/images/upload",
        headers=user.headers,
        files=[("file", ("a.png", image_bytes())), ("file", ("b.png", image_bytes("GIF")))],
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert client.get("/images/", headers=user.headers).headers["X-Total-Count"] == "0"


def test_control_characters_from_a_client_cannot_forge_a_log_line(
    client: TestClient,
) -> None:
    client.get("/images/%0d%0a2026-01-01 00:00:00,000 INFO [x] app.requests: GET /forged 200%00")
    client.get("/health", headers={"X-Request-ID": "bad\r\nid"})
    client.get("/images/%e2%80%a8line%e2%80%a9paragraph")
    text = log_file().read_text()
    assert "\x00" not in text
    assert not any(line.startswith("2026-01-01 00:00:00,000") for line in text.splitlines())
    assert "/images/\\r\\n2026-01-01" in text
    assert "\u2028" not in text and "\u2029" not in text
    assert "/images/\\u2028line\\u2029paragraph" in text


def test_log_and_database_files_are_private(services: Services) -> None:
    assert stat.S_IMODE(os.stat(log_file()).st_mode) & 0o007 == 0
    database = services.settings.database_url.removeprefix("sqlite:///")
    if services.settings.database_url.startswith("sqlite"):
        assert stat.S_IMODE(os.stat(database).st_mode) == 0o600


def test_logs_rotate_by_size_too(tmp_path: Path) -> None:
    handler = DailyAndSizeRotatingFileHandler(tmp_path / "app.log", max_bytes=200, backup_count=3)
    logger = logging.Logger("rotation-test")
    logger.addHandler(handler)
    for n in range(30):
        logger.warning("line %02d %s", n, "x" * 40)
    handler.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "app.log" in files and len(files) == 4  # the live file and three kept
    assert all((tmp_path / name).stat().st_size <= 200 for name in files)
    # What is kept is the newest: the live file and the three rotated just before it, in
    # order, whatever was deleted along the way.
    kept = "".join((tmp_path / name).read_text() for name in [*files[1:], "app.log"])
    numbers = [int(line.split()[1]) for line in kept.splitlines()]
    assert numbers == list(range(numbers[0], 30)) and numbers[-1] == 29


def test_an_upload_of_countless_parts_is_refused(client: TestClient, user: UserHandle) -> None:
    parts = [(f"part{n}", ("a.txt", b"x")) for n in range(1500)]
    response = client.post("/images/upload", headers=user.headers, files=parts)
    assert response.status_code == 400
    assert "Too many files" in response.json()["detail"]
