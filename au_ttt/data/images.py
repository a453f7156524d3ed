"""The one place images are decoded: strict about damage, lenient about format.

Every still image the pipeline reads (dataset frames, decoded DISFA frames, a user's photos) goes through
:func:`read_image`. It

* refuses damaged files instead of guessing: a truncated JPEG/PNG (OpenCV would return it with its lower
  part grey and only print "Premature end of JPEG file", naming no file), a zero-byte file, or a file that
  is not an image raise :class:`ImageError`, which names the file, the cause and the fix;
* accepts what cameras and editors write: greyscale, palette, RGBA/LA (composited over white), CMYK and
  16-bit images all come back as 8-bit RGB, turned upright by their EXIF orientation tag (as OpenCV's
  ``imread`` does by default, so landmarks and crops of one file always agree).

The training loader reads the pipeline's *own* aligned crops (JPEGs that ``au-ttt crops`` wrote with OpenCV)
100 k times an epoch; :func:`read_crop` decodes them with OpenCV (measured 0.30 vs 0.85 ms per 256 px crop
through :func:`read_image`; the same pixels for these files, tests/test_loader_fast.py) and stays strict:
a missing, empty, truncated (no JPEG end marker) or undecodable crop is an :class:`ImageError`.

Videos are opened in one place too: :func:`open_video` (OpenCV's FFMPEG backend, an :class:`InputError` naming
the file and the caller's fix when it does not open) and :func:`opened_video` (the same, released on exit).

Stages that read many frames catch :class:`ImageError` and count the frame as an excluded, named row of
their report rather than stopping (see ``au_ttt.data.landmarks`` and ``au_ttt.data.align``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from au_ttt.errors import InputError

__all__ = ["IMAGE_ERRORS", "ImageError", "open_video", "opened_video", "read_crop", "read_image", "to_rgb8"]


class ImageError(InputError):
    """An image file is missing, empty, truncated or not an image; the message names it.

    ``reason`` is one of :data:`IMAGE_ERRORS` (stages count excluded frames by it).
    """

    def __init__(self, message: str, reason: str = "damaged") -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):  # keep the reason across processes (pickle rebuilds from args alone)
        return type(self), (str(self), self.reason)


# Why a frame's image could not be used, in the order stages store them as codes 1, 2, … (0 = no error).
IMAGE_ERRORS: tuple[str, ...] = ("missing", "empty", "truncated", "not_an_image", "damaged", "too_large")


def to_rgb8(image) -> np.ndarray:
    """A PIL image of any mode → contiguous RGB uint8 (H, W, 3)."""
    from PIL import Image

    mode = image.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        wide = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or wide.max(initial=0) > 255 else 255.0
        grey = np.clip(np.rint(wide * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if mode == "F":
        grey = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    return np.ascontiguousarray(np.asarray(image if mode == "RGB" else image.convert("RGB")))


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Decode ``path`` completely into RGB uint8 (H, W, 3); any damage is an :class:`ImageError`.

    ``max_pixels``: a file whose header announces more pixels is refused (reason ``too_large``) before
    any pixel is decoded, so a huge image costs no memory (``au-ttt predict`` reads arbitrary user files).
    """
    import warnings

    from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: image not found; check the image root (--root) and the index's image column",
                         "missing")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes); re-copy or re-extract it from the original data", "empty")
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # another library switched PIL to padding damaged files silently
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            if max_pixels is not None:       # the caller's limit replaces Pillow's 89.5 MP warning
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            if max_pixels is not None and image.width * image.height > max_pixels:
                raise ImageError(f"{path}: {image.width}×{image.height} image ({image.width * image.height / 1e6:.1f} "
                                 f"megapixels) is over the {max_pixels / 1e6:g} MP decode limit; downscale it "
                                 "first, or raise --max-pixels", "too_large")
            image.load()  # decodes every byte: truncation surfaces here, not as grey rows later
            ImageOps.exif_transpose(image, in_place=True)   # in place: no second copy of a large photo
            return to_rgb8(image)
    except ImageError:
        raise
    except UnidentifiedImageError as err:
        raise ImageError(f"{path}: not an image file PIL can read ({err}); remove it or replace it with the "
                         "original frame", "not_an_image") from None
    except Image.DecompressionBombError as err:
        raise ImageError(f"{path}: refused as a decompression bomb ({err})") from None
    except (OSError, SyntaxError, ValueError) as err:
        reason = "truncated" if "truncated" in str(err).lower() else "damaged"
        raise ImageError(f"{path}: damaged image ({err}); re-copy or re-extract it from the original data",
                         reason) from None


_JPEG_EOI = b"\xff\xd9"


def read_crop(path: str | Path) -> np.ndarray:
    """Decode one of the pipeline's own JPEG crops into RGB uint8 (H, W, 3) with OpenCV; damage is an ImageError.

    For files ``au-ttt crops`` wrote (no EXIF, baseline JPEG). A file cut short lacks the end-of-image marker
    (OpenCV would return its lower part grey and print a warning); that and every other failure names the file.
    """
    import cv2

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: crop not found; rerun `au-ttt crops` (and `au-ttt gather`)", "missing") from None
    if not data:
        raise ImageError(f"{path}: empty crop file (0 bytes); rerun `au-ttt crops`", "empty")
    if not data.rstrip(b"\x00").endswith(_JPEG_EOI):
        kind = "truncated" if data[:2] == b"\xff\xd8" else "not_an_image"
        raise ImageError(f"{path}: {'truncated JPEG (no end marker)' if kind == 'truncated' else 'not a JPEG'}; "
                         "rerun `au-ttt crops`", kind)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"{path}: OpenCV cannot decode this crop; rerun `au-ttt crops`", "damaged")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def open_video(path: str | Path, fix: str) -> Any:
    """An open ``cv2.VideoCapture`` of ``path`` (FFMPEG backend); the caller releases it.

    Raises :class:`InputError` naming the file and ``fix`` (what the user should do) if it does not open.
    """
    import cv2

    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise InputError(f"{path}: cannot open the video; {fix}")
    return capture


@contextmanager
def opened_video(path: str | Path, fix: str) -> Iterator[Any]:
    """:func:`open_video` as a context: the capture is released however the block ends."""
    capture = open_video(path, fix)
    try:
        yield capture
    finally:
        capture.release()
