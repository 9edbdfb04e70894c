"""Decoding takes a bounded amount of memory at once, whatever the images."""

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from PIL import Image

from app.utils import image_utils
from app.utils.decode_budget import DecodeBudget

MB = 1024 * 1024


def test_a_decode_that_does_not_fit_waits_for_room() -> None:
    budget = DecodeBudget(100 * MB)
    holding = budget.reserve(70 * MB)
    holding.__enter__()
    second_in = threading.Event()

    def second() -> None:
        with budget.reserve(40 * MB):
            second_in.set()

    waiter = threading.Thread(target=second)
    waiter.start()
    # A negative check needs a window: 0.2 s in which the second must not get in.
    assert not second_in.wait(0.2)
    assert budget.used_bytes == 70 * MB
    holding.__exit__(None, None, None)
    assert second_in.wait(5)
    waiter.join(5)
    assert budget.used_bytes == 0


def test_a_decode_larger_than_the_whole_budget_runs_alone() -> None:
    budget = DecodeBudget(100 * MB)
    with budget.reserve(400 * MB):
        assert budget.used_bytes == 100 * MB
    assert budget.used_bytes == 0


class RecordingBudget(DecodeBudget):
    def __init__(self, capacity_bytes: int) -> None:
        super().__init__(capacity_bytes)
        self.reserved: list[int] = []

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        self.reserved.append(nbytes)
        with super().reserve(nbytes):
            yield


def test_what_a_decode_reserves_comes_from_the_header(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = RecordingBudget(1024 * MB)
    monkeypatch.setattr(image_utils, "decode_budget", budget)
    buffer = io.BytesIO()
    Image.new("RGBA", (1000, 500)).save(buffer, format="PNG")
    image_utils.inspect_image(buffer.getvalue(), max_pixels=10**8)
    assert budget.reserved == [1000 * 500 * 4 * 2]  # the pixels, and one converted copy


def test_an_animated_image_reserves_full_colour_canvases(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow decodes the frames after the first of a palette GIF as RGB(A), a few at a time.
    budget = RecordingBudget(1024 * MB)
    monkeypatch.setattr(image_utils, "decode_budget", budget)
    frames = [Image.new("P", (700, 700), color) for color in (1, 2, 3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    image_utils.inspect_image(buffer.getvalue(), max_pixels=10**8)
    assert budget.reserved == [700 * 700 * 4 * 3]
