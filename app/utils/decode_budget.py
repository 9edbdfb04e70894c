"""Bounds the memory that image decoding takes at once.

A near-limit image costs hundreds of MB while it decodes (a 7000x7000 RGBA PNG is 196 MB of
pixels, and converting it makes a copy), so a dozen at once reached 1.8 GB. Each decode
reserves what its pixels will need, known from the header before any pixel is decoded, and
waits while other decodes hold the rest of the budget. A decode larger than the whole budget
runs alone.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

# Bytes per pixel of Pillow's modes as decoded; other modes count as 4.
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "I;16": 2, "RGB": 3, "YCbCr": 3}
# The decoded pixels, and one converted copy of them (to RGB, or RGBA and back).
_COPIES = 2
# An animated image: the frame being decoded, the composited canvas, and the previous one.
_ANIMATED_COPIES = 3


class DecodeBudget:
    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._used = 0
        self._changed = threading.Condition()

    @property
    def used_bytes(self) -> int:
        return self._used

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Hold ``nbytes`` of the budget for the duration; waits until they are free."""
        nbytes = min(nbytes, self.capacity_bytes)
        with self._changed:
            self._changed.wait_for(lambda: self._used + nbytes <= self.capacity_bytes)
            self._used += nbytes
        try:
            yield
        finally:
            with self._changed:
                self._used -= nbytes
                self._changed.notify_all()

    @contextmanager
    def decoding(self, image: Image.Image) -> Iterator[None]:
        """Hold what decoding this opened image (at its current, maybe drafted, size) needs."""
        width, height = image.size
        if getattr(image, "n_frames", 1) > 1:
            # Pillow decodes the frames after the first as RGB(A) and composites each onto
            # the last: a few full-size 4-byte canvases, whatever the first frame's mode.
            per_pixel = 4 * _ANIMATED_COPIES
        else:
            per_pixel = _BYTES_PER_PIXEL.get(image.mode, 4) * _COPIES
        with self.reserve(width * height * per_pixel):
            yield


# The process's budget; create_app sets it from [app] DECODE_MEMORY_MB.
decode_budget = DecodeBudget(512 * 1024 * 1024)


def set_decode_memory(megabytes: int) -> None:
    decode_budget.capacity_bytes = megabytes * 1024 * 1024
