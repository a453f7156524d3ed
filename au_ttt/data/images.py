"""The one place images are decoded: strict about damage, lenient about format.

Every still image the pipeline reads (dataset frames, decoded DISFA frames, a user's photos) goes through
:func:`read_image`. It

* refuses damaged files instead of guessing: a truncated JPEG/PNG (OpenCV would return it with its lower
  part grey and only print "Premature end of JPEG file", naming no file), a zero-byte file, or a file that
  is not an image raise :class:`ImageError`, which names the file, the cause and the fix;
* accepts what cameras and editors write: greyscale, palette, RGBA/LA (composited over white), CMYK and
  16-bit images all come back as 8-bit RGB, turned upright by their EXIF orientation tag (as OpenCV's
  ``imread`` does by default, so landmarks and crops of one file always agree).

Stages that read many frames catch :class:`ImageError` and count the frame as an excluded, named row of
their report rather than stopping (see ``au_ttt.data.landmarks`` and ``au_ttt.data.align``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from au_ttt.errors import InputError

__all__ = ["IMAGE_ERRORS", "ImageError", "read_image", "to_rgb8"]


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
