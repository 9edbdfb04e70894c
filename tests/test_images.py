"""Uploading, listing, downloading and deleting images through the HTTP API."""

import hashlib
import io
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.container import Services
from tests.conftest import (
    UserHandle,
    image_bytes,
    register_and_log_in,
    services_of,
    stored_file,
    upload,
)


@pytest.mark.parametrize(
    ("image_format", "content_type", "filename"),
    [
        ("JPEG", "image/jpeg", "cat.jpg"),
        ("PNG", "image/png", "cat.png"),
        ("BMP", "image/bmp", "cat.bmp"),
        ("GIF", "image/gif", "cat.gif"),
    ],
)
def test_upload_each_supported_format(
    client: TestClient,
    services: Services,
    user: UserHandle,
    image_format: str,
    content_type: str,
    filename: str,
) -> None:
    data = image_bytes(image_format, size=(40, 30))
    body = upload(client, user, data, filename=filename)
    assert body["format"] == image_format
    assert body["content_type"] == content_type
    assert (body["width"], body["height"]) == (40, 30)
    assert body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["filename"] == filename
    assert body["file_url"] == f"/images/{body['id']}/file"
    path = stored_file(services, body["id"])
    assert path.read_bytes() == data
    assert path.parent.name == f"user_{user.id}"
    assert path.name != filename  # stored under a server-made name


def test_the_type_comes_from_the_bytes_not_the_name(client: TestClient, user: UserHandle) -> None:
    body = upload(client, user, image_bytes("PNG"), filename="really-a-png.jpg")
    assert body["format"] == "PNG"
    assert body["content_type"] == "image/png"

    response = client.post(
        "/images/upload",
        headers=user.headers,
        files={"file": ("photo.jpg", b"hello, I am text", "image/jpeg")},
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_image_type"


@pytest.mark.parametrize("image_format", ["TIFF", "WEBP"])
def test_other_image_types_are_refused(
    client: TestClient, user: UserHandle, image_format: str
) -> None:
    response = client.post(
        "/images/upload",
        headers=user.headers,
        files={"file": ("x.img", image_bytes(image_format), "image/x")},
    )
    assert response.status_code == 415


def test_truncated_image_is_refused_at_upload(client: TestClient, user: UserHandle) -> None:
    data = image_bytes("JPEG", size=(256, 256))
    response = client.post(
        "/images/upload",
        headers=user.headers,
        files={"file": ("cut.jpg", data[: len(data) // 2], "image/jpeg")},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_image"


def test_empty_or_missing_file_is_refused(client: TestClient, user: UserHandle) -> None:
    empty = client.post(
        "/images/upload", headers=user.headers, files={"file": ("e.png", b"", "image/png")}
    )
    assert empty.status_code == 415
    missing = client.post("/images/upload", headers=user.headers, data={"other": "x"})
    assert missing.status_code == 422


def test_upload_needs_a_token(client: TestClient) -> None:
    response = client.post("/images/upload", files={"file": ("a.png", image_bytes(), "image/png")})
    assert response.status_code == 401


def test_upload_over_the_size_limit_is_413_and_stores_nothing(
    make_client: Callable[..., TestClient],
) -> None:
    small = make_client(app={"max_upload_size": "2000"})
    owner = register_and_log_in(small)
    noise = Image.frombytes("RGB", (64, 64), bytes(range(256)) * 48)
    buffer = io.BytesIO()
    noise.save(buffer, format="BMP")  # about 12 KB: over the limit, under the multipart allowance
    for data in (buffer.getvalue(), b"\0" * 100_000):
        response = small.post(
            "/images/upload", headers=owner.headers, files={"file": ("big.bmp", data, "image/bmp")}
        )
        assert response.status_code == 413
        assert "2000 bytes" in response.json()["detail"]
        assert response.json()["code"] == "payload_too_large"
    assert small.get("/images/", headers=owner.headers).json() == []
    uploads = services_of(small).store.root
    assert not any(path.is_file() for path in uploads.rglob("*"))


def test_decompression_bomb_is_refused(make_client: Callable[..., TestClient]) -> None:
    strict = make_client(app={"max_image_pixels": "10000"})
    owner = register_and_log_in(strict)
    response = strict.post(
        "/images/upload",
        headers=owner.headers,
        files={"file": ("wide.png", image_bytes(size=(200, 100)), "image/png")},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "image_too_large"


def test_client_filename_is_kept_only_for_display(
    client: TestClient, services: Services, user: UserHandle
) -> None:
    body = upload(client, user, filename="../../etc/passwd\x00.png")
    assert "/" not in body["filename"] and "\x00" not in body["filename"]
    assert stored_file(services, body["id"]).is_relative_to(services.store.root)


def test_list_is_newest_first_with_paging_and_total(client: TestClient) -> None:
    owner = register_and_log_in(client)
    ids = [upload(client, owner)["id"] for _ in range(5)]
    response = client.get("/images/", headers=owner.headers)
    assert response.status_code == 200
    assert [image["id"] for image in response.json()] == ids[::-1]
    assert response.headers["X-Total-Count"] == "5"

    page = client.get("/images/?skip=1&limit=2", headers=owner.headers)
    assert [image["id"] for image in page.json()] == [ids[3], ids[2]]
    assert page.headers["X-Total-Count"] == "5"


@pytest.mark.parametrize("query", ["skip=-1", "limit=0", "limit=101", "limit=abc"])
def test_bad_paging_is_422(client: TestClient, user: UserHandle, query: str) -> None:
    assert client.get(f"/images/?{query}", headers=user.headers).status_code == 422


def test_read_and_download(client: TestClient, user: UserHandle) -> None:
    data = image_bytes("JPEG")
    image = upload(client, user, data, filename="holiday.jpg")
    detail = client.get(f"/images/{image['id']}", headers=user.headers)
    assert detail.status_code == 200
    assert detail.json()["results"] == []
    download = client.get(f"/images/{image['id']}/file", headers=user.headers)
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["content-type"] == "image/jpeg"


def test_delete_removes_row_file_and_results(
    client: TestClient, services: Services, user: UserHandle
) -> None:
    image = upload(client, user)
    result = client.post("/images/inference", headers=user.headers, json={"image_id": image["id"]})
    assert result.status_code == 200
    path = stored_file(services, image["id"])

    assert client.delete(f"/images/{image['id']}", headers=user.headers).status_code == 204
    assert not path.exists()
    assert client.get(f"/images/{image['id']}", headers=user.headers).status_code == 404
    assert (
        client.get(f"/images/inference/{result.json()['id']}", headers=user.headers).status_code
        == 404
    )
    assert client.delete(f"/images/{image['id']}", headers=user.headers).status_code == 404


def test_other_users_images_are_not_found(
    client: TestClient, services: Services, user: UserHandle, other_user: UserHandle
) -> None:
    image = upload(client, user)
    for method, path in (
        ("GET", f"/images/{image['id']}"),
        ("GET", f"/images/{image['id']}/file"),
        ("DELETE", f"/images/{image['id']}"),
    ):
        response = client.request(method, path, headers=other_user.headers)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert client.get("/images/", headers=other_user.headers).json() == []
    assert stored_file(services, image["id"]).exists()


def test_unknown_image_is_404_and_bad_id_is_422(client: TestClient, user: UserHandle) -> None:
    assert client.get("/images/999999", headers=user.headers).status_code == 404
    assert client.get("/images/abc", headers=user.headers).status_code == 422
