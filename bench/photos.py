"""Benchmark photos: distinct, camera-sized JPEGs derived from the test photos in tests/data."""

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

SOURCES = ("chelsea.jpg", "coffee.jpg", "rocket.jpg")
DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def make_photos(folder: Path, count: int = 64, seed: int = 0) -> list[Path]:
    """Write `count` distinct JPEGs of 1000-1600 px and about 300-700 KB; reuse existing ones."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo_{i:03d}.jpg" for i in range(count)]
    if all(path.exists() for path in paths):
        return paths
    rng = np.random.default_rng(seed)
    originals = [Image.open(DATA / name).convert("RGB") for name in SOURCES]
    for i, path in enumerate(paths):
        source = originals[i % len(originals)]
        # A random crop of 70-100 %, scaled up to camera size, flipped, re-lit, with sensor noise:
        # every file differs, so no cache anywhere can serve one from another.
        keep = rng.uniform(0.7, 1.0)
        width, height = source.size
        left = rng.uniform(0, width * (1 - keep))
        top = rng.uniform(0, height * (1 - keep))
        crop = source.crop((left, top, left + width * keep, top + height * keep))
        target_width = int(rng.integers(1000, 1601))
        image = crop.resize(
            (target_width, int(target_width * crop.height / crop.width)), Image.Resampling.BICUBIC
        )
        if rng.random() < 0.5:
            image = ImageOps.mirror(image)
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.85, 1.15))
        noisy = np.asarray(image, dtype=np.float32) + rng.normal(
            0, rng.uniform(9, 11), (image.height, image.width, 3)
        )
        image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=93)
        path.write_bytes(buffer.getvalue())
    return paths
