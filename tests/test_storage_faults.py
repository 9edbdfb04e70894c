"""A full or read-only image store: a clean 507 or 503, nothing half-stored, and recovery."""

import io
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import image_bytes, register_and_log_in, upload


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs of the test's own (the machine's disks are never filled)."""
    mount_point = tmp_path / "uploads"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def noise_png(seed: int) -> bytes:
    """About 200 KB that does not compress: five of them fill the disk."""
    pixels = np.random.default_rng(seed).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def files_in(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_a_full_store_answers_507_keeps_nothing_and_recovers(
    make_client: Callable[..., TestClient], small_disk: Path
) -> None:
    client = make_client(app={"upload_dir": str(small_disk)})
    owner = register_and_log_in(client)
    stored: list[int] = []
    for seed in range(20):
        response = client.post(
            "/images/upload",
            headers=owner.headers,
            files={"file": ("noise.png", noise_png(seed))},
        )
        if response.status_code != 201:
            break
        stored.append(response.json()["id"])
    assert response.status_code == 507, response.text
    assert response.json()["code"] == "storage_full"
    listed = client.get("/images/?limit=100", headers=owner.headers)
    assert sorted(image["id"] for image in listed.json()) == stored  # no row without its file
    assert not any(name.startswith(".") for name in files_in(small_disk))  # no temp file left
    assert len(files_in(small_disk)) == len(stored)
    # Room again: the same upload goes through.
    for image_id in stored:
        client.delete(f"/images/{image_id}", headers=owner.headers)
    assert upload(client, owner, noise_png(99))["id"]


def test_a_read_only_store_answers_503_then_recovers(
    make_client: Callable[..., TestClient], small_disk: Path
) -> None:
    client = make_client(app={"upload_dir": str(small_disk)})
    owner = register_and_log_in(client)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        response = client.post(
            "/images/upload", headers=owner.headers, files={"file": ("a.png", image_bytes())}
        )
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "storage_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert client.get("/images/", headers=owner.headers).json() == []
    assert upload(client, owner)["id"]
