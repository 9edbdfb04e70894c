#!/usr/bin/env python3
"""Regenerate the test photos in tests/data/ from scikit-image's bundled images.

    pip install scikit-image pillow
    python scripts/make_test_images.py [--out-dir tests/data]

Sources (bundled in the scikit-image wheel, no download needed); licence
notes are quoted from the skimage.data docstrings:
  * skimage.data.chelsea(): "No copyright restrictions.  CC0 by the
    photographer (Stefan van der Walt)."
  * skimage.data.coffee():  "No copyright restrictions.  CC0 by the
    photographer (Rachel Michetti)."
  * skimage.data.rocket():  "The image was captured by SpaceX and released
    in the public domain"

Files written (see tests/data/README.md for details):
  chelsea.jpg, coffee.jpg, rocket.jpg  originals' size, RGB JPEG quality 90
  grey.png            chelsea, 150x100, mode L
  palette_alpha.png   coffee, 150x100, mode P, one fully transparent palette
                      entry (tRNS) used by a 20 px border
  cmyk.jpg            rocket, 160x107, CMYK JPEG quality 90
  one_pixel.png       1x1 RGB, the centre pixel of chelsea
  exif_rotated.jpg    chelsea (451x300) stored rotated 90 degrees
                      counter-clockwise (300x451) with EXIF Orientation = 6;
                      honouring EXIF (ImageOps.exif_transpose) gives the
                      upright 451x300 cat
  animated.gif        2 frames, 150x100: chelsea downscaled, then coffee

With the same Pillow/scikit-image versions the output is byte-identical.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from skimage import data

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO_ROOT / "tests" / "data"

EXIF_ORIENTATION_TAG = 0x0112
SMALL = (150, 100)


def rgb(arr: np.ndarray) -> Image.Image:
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3, arr.shape
    return Image.fromarray(arr, "RGB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Regenerate tests/data images from skimage.data.")
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    args = ap.parse_args(argv)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    chelsea = rgb(data.chelsea())  # 451x300
    coffee = rgb(data.coffee())  # 600x400
    rocket = rgb(data.rocket())  # 640x427

    # Plain photos at the original size.
    for name, img in (("chelsea", chelsea), ("coffee", coffee), ("rocket", rocket)):
        img.save(out / f"{name}.jpg", "JPEG", quality=90)

    # Greyscale PNG (mode L).
    chelsea.resize(SMALL, Image.Resampling.LANCZOS).convert("L").save(
        out / "grey.png", optimize=True
    )

    # Palette PNG with transparency: 255 adaptive colours + index 255 fully
    # transparent, painted on a 20 px border.
    small_coffee = coffee.resize(SMALL, Image.Resampling.LANCZOS)
    pal = small_coffee.quantize(
        colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    idx = np.array(pal)
    assert idx.max() < 255
    idx[:20, :] = 255
    idx[-20:, :] = 255
    idx[:, :20] = 255
    idx[:, -20:] = 255
    original = pal.getpalette()
    assert original is not None
    palette = [*original[: 255 * 3], 0, 0, 0]
    p_img = Image.fromarray(idx, "P")
    p_img.putpalette(palette)
    p_img.save(out / "palette_alpha.png", transparency=255)

    # CMYK JPEG.
    rocket.resize((160, 107), Image.Resampling.LANCZOS).convert("CMYK").save(
        out / "cmyk.jpg", "JPEG", quality=90
    )

    # 1x1 image.
    w, h = chelsea.size
    Image.new("RGB", (1, 1), chelsea.getpixel((w // 2, h // 2))).save(out / "one_pixel.png")

    # EXIF-rotated JPEG: pixels stored rotated 90 degrees counter-clockwise;
    # Orientation 6 tells the viewer to rotate 90 degrees clockwise to display.
    stored = chelsea.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = 6
    stored.save(out / "exif_rotated.jpg", "JPEG", quality=90, exif=exif.tobytes())

    # Animated GIF, 2 frames, first is chelsea downscaled.
    f1 = chelsea.resize(SMALL, Image.Resampling.LANCZOS)
    f2 = coffee.resize(SMALL, Image.Resampling.LANCZOS)
    f1.save(out / "animated.gif", save_all=True, append_images=[f2], duration=500, loop=0)

    # Self-checks.
    with Image.open(out / "grey.png") as im:
        assert im.mode == "L", im.mode
    with Image.open(out / "palette_alpha.png") as im:
        assert im.mode == "P" and "transparency" in im.info, (im.mode, im.info)
    with Image.open(out / "cmyk.jpg") as im:
        assert im.mode == "CMYK", im.mode
    with Image.open(out / "one_pixel.png") as im:
        assert im.size == (1, 1)
    with Image.open(out / "exif_rotated.jpg") as im:
        assert im.size == (h, w) and im.getexif().get(EXIF_ORIENTATION_TAG) == 6
        upright = ImageOps.exif_transpose(im)
        assert upright.size == (w, h), upright.size
        diff = np.abs(np.asarray(upright, np.int16) - np.asarray(chelsea, np.int16)).mean()
        assert diff < 5, f"exif_transpose does not give the upright cat (mean abs diff {diff:.1f})"
    with Image.open(out / "animated.gif") as im:
        assert getattr(im, "n_frames", 1) >= 2 and getattr(im, "is_animated", False)

    for p in sorted(out.iterdir()):
        if p.suffix in (".jpg", ".png", ".gif"):
            with Image.open(p) as im:
                size = p.stat().st_size
                print(f"{p.name:20s} {size:7d} bytes  {im.format:4s} {im.mode:5s} {im.size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
