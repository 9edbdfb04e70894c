"""Units with logic of their own: file storage, image checks, secrets, login limits, redaction."""

import io
import platform
import stat
from pathlib import Path

import pytest
from PIL import Image

from app.services.login_limiter import LoginLimiter
from app.services.security import resolve_secret_key
from app.services.storage import ImageStore
from app.utils.exceptions import TooManyRequestsError
from app.utils.image_utils import inspect_image, open_rgb
from app.utils.logging_config import redact
from app.utils.memory import limit_malloc_arenas
from tests.conftest import image_bytes


def test_store_writes_atomically_under_user_folders(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "uploads")
    relative = store.save(owner_id=7, data=b"abc", extension="png")
    assert relative.startswith("user_7/") and relative.endswith(".png")
    assert store.path(relative).read_bytes() == b"abc"
    assert not list((tmp_path / "uploads" / "user_7").glob(".upload-*"))
    store.delete(relative)
    assert not store.path(relative).exists()
    store.delete(relative)  # deleting twice is harmless


def test_store_refuses_paths_outside_its_root(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "uploads")
    with pytest.raises(ValueError, match="escapes"):
        store.path("../outside.png")


def test_inspect_reads_every_frame_of_a_gif() -> None:
    frames = [Image.new("RGB", (20, 10), (80 * i, 0, 0)) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    info = inspect_image(buffer.getvalue(), max_pixels=10_000)
    assert (info.format, info.frames, info.width, info.height) == ("GIF", 3, 20, 10)


def test_open_rgb_honours_exif_orientation_and_transparency(tmp_path: Path) -> None:
    rotated = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: shown 90 degrees clockwise
    rotated.save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert open_rgb(tmp_path / "r.jpg").size == (20, 40)

    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    clear.save(tmp_path / "clear.png")
    upright = open_rgb(tmp_path / "clear.png")
    assert upright.mode == "RGB"
    assert upright.getpixel((0, 0)) == (255, 255, 255)


def test_draft_decodes_big_jpegs_at_reduced_scale(tmp_path: Path) -> None:
    (tmp_path / "big.jpg").write_bytes(image_bytes("JPEG", size=(1600, 1200)))
    # The largest reduction that keeps both sides at least the requested size: 1/2 here.
    assert open_rgb(tmp_path / "big.jpg", draft_size=(320, 320)).size == (800, 600)


def test_placeholder_secret_is_replaced_by_a_kept_random_key(tmp_path: Path) -> None:
    first = resolve_secret_key("your_secret_key_for_jwt", tmp_path)
    assert first != "your_secret_key_for_jwt" and len(first) >= 32
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert resolve_secret_key("", tmp_path) == first  # kept across restarts
    assert resolve_secret_key("a-real-configured-secret-key-0123456789", tmp_path) == (
        "a-real-configured-secret-key-0123456789"
    )


def test_login_limiter_counts_attempts_per_account_and_per_client() -> None:
    limiter = LoginLimiter(max_attempts=2, max_attempts_per_client=3, window_seconds=60)
    limiter.begin(" Alice ", "1.2.3.4")
    limiter.begin("alice", "1.2.3.4")  # the same account, spelled otherwise
    with pytest.raises(TooManyRequestsError) as refused:
        limiter.begin("alice", "1.2.3.4")
    assert 0 < int(refused.value.headers["Retry-After"]) <= 60
    limiter.begin("alice", "5.6.7.8")  # another client has its own count
    voided = limiter.begin("bob", "1.2.3.4")  # the client's third attempt...
    voided.void()  # ...got no answer (database down): it does not count
    limiter.begin("carol", "1.2.3.4").succeeded()  # nor does a success
    limiter.begin("dave", "1.2.3.4")
    with pytest.raises(TooManyRequestsError):
        limiter.begin("erin", "1.2.3.4")  # three real failures from this client, any account


def test_secrets_are_redacted_from_log_text() -> None:
    text = redact(
        "GET /ws/inference?token=eyJhbGciOi.x.y&a=1 "
        'Authorization: Bearer abc.def "password": "hunter22"'
    )
    assert "eyJhbGciOi" not in text and "abc.def" not in text and "hunter22" not in text
    assert "/ws/inference?[redacted]" in text
    encoded = redact('"WebSocket /ws/inference?tok%65n=eyJhbGciOi.x.y" [accepted]')
    assert "eyJhbGciOi" not in encoded
    assert "token=[redacted]&x=1" in redact("GET /other?token=abc&x=1")


def test_malloc_arenas_are_capped_on_glibc_and_left_alone_when_asked() -> None:
    assert limit_malloc_arenas(0) is False
    if platform.libc_ver()[0] == "glibc":
        assert limit_malloc_arenas(2) is True
