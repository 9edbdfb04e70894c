"""Decoding and checking images with Pillow: what we accept and how models get pixels."""

import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, ImageSequence, UnidentifiedImageError

from app.utils.decode_budget import decode_budget
from app.utils.exceptions import ImageTooLargeError, InvalidImageError, UnsupportedImageError

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "GIF": "image/gif"}
FILE_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp", "GIF": "gif"}
# Every extension that names each format, for file names sent back with an image.
ACCEPTED_EXTENSIONS = {
    "JPEG": {".jpg", ".jpeg", ".jpe", ".jfif"},
    "PNG": {".png"},
    "BMP": {".bmp", ".dib"},
    "GIF": {".gif"},
}
# Frames of an animated GIF are decoded to validate it; this bounds the work.
MAX_TOTAL_FRAME_PIXELS_FACTOR = 4

# Truncated files must fail to decode, never be padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Decoding is CPU-bound: more decodes at once than this would not go faster. Their memory is
# bounded by the decode budget.
_DECODE_SLOTS = threading.BoundedSemaphore(2 * (os.cpu_count() or 1))
_REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA")


@dataclass(frozen=True)
class ImageInfo:
    format: str
    content_type: str
    extension: str
    width: int
    height: int
    frames: int


def inspect_image(data: bytes, *, max_pixels: int) -> ImageInfo:
    """Decode the whole image to prove it is one we accept; raise a clear error if not."""
    try:
        # The size is checked against our own limit before any pixel is decoded.
        with _DECODE_SLOTS, Image.open(io.BytesIO(data), formats=tuple(CONTENT_TYPES)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLargeError(
                    f"image is {width}x{height} pixels; at most {max_pixels} pixels are allowed"
                )
            with decode_budget.decoding(image):
                frames = _decode_all_frames(
                    image, budget=max_pixels * MAX_TOTAL_FRAME_PIXELS_FACTOR
                )
            image_format = image.format or ""
    except UnidentifiedImageError as exc:
        raise UnsupportedImageError(
            "file is not a supported image; accepted types are JPEG, PNG, BMP and GIF"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image is too large to decode safely: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(f"image data is corrupt or truncated: {exc}") from exc
    return ImageInfo(
        format=image_format,
        content_type=CONTENT_TYPES[image_format],
        extension=FILE_EXTENSIONS[image_format],
        width=width,
        height=height,
        frames=frames,
    )


def _decode_all_frames(image: Image.Image, *, budget: int) -> int:
    frames = 0
    decoded_pixels = 0
    for frame in ImageSequence.Iterator(image):
        decoded_pixels += frame.size[0] * frame.size[1]
        if decoded_pixels > budget:
            raise ImageTooLargeError("animated image has too many frames to decode safely")
        frame.load()
        frames += 1
    return frames


def open_rgb(path: Path, *, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """The first frame of a stored image as upright RGB pixels.

    ``draft_size`` is the least the caller needs: JPEGs are decoded at 1/2, 1/4 or 1/8 scale
    (several times faster), other formats are shrunk by a whole factor right after decoding,
    so that later steps never work on tens of megapixels the model does not need.
    """
    with _DECODE_SLOTS, Image.open(path) as image:
        if draft_size is not None and image.format == "JPEG":
            image.draft("RGB", draft_size)
        with decode_budget.decoding(image):
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            return to_rgb(shrink(image, draft_size) if draft_size else image)


def shrink(image: Image.Image, least: tuple[int, int]) -> Image.Image:
    """Divide both sides by the largest whole factor that keeps them at least ``least``."""
    factor = min(image.width // least[0], image.height // least[1])
    if factor < 2:
        return image
    if image.mode not in _REDUCIBLE_MODES:
        has_alpha = image.mode in ("PA", "RGBa") or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    return image.reduce(factor)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels of any mode; transparent areas become white rather than black."""
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
