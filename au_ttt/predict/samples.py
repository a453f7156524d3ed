"""Real photographs that ship inside installed packages, for tests, the detector measurement and the docs.

No network: ``skimage.data.astronaut()`` (Eileen Collins, NASA, public domain), ``skimage.data.camera()``
(the cameraman, greyscale), matplotlib's ``grace_hopper.jpg`` (US Navy, public domain) and scikit-image's
LFW subset (``lfw_subset.npy``: 100 face crops of 25×25 px from Labeled Faces in the Wild, Huang et al. 2007,
then 100 non-faces). :func:`group_photo` assembles nine of these real faces on one canvas; :func:`face_video`
writes a video in which a real face is present, leaves and comes back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["GROUP_FACES", "astronaut", "cameraman", "face_video", "group_photo", "hopper", "lfw_faces",
           "no_face_images"]


def astronaut() -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())


def cameraman() -> np.ndarray:
    """The 512² greyscale cameraman as RGB (his face is turned and small: HOG misses it)."""
    import skimage.data

    return np.ascontiguousarray(np.repeat(skimage.data.camera()[..., None], 3, axis=2))


def hopper() -> np.ndarray:
    import matplotlib

    from au_ttt.data.images import read_image

    return read_image(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")


def lfw_faces(n: int = 100, size: int = 120) -> list[np.ndarray]:
    """The first ``n`` LFW-subset faces, given a 30 % replicated border and resized to ``size``² RGB."""
    import cv2
    import skimage.data

    faces = np.load(Path(skimage.data.data_dir) / "lfw_subset.npy")[:min(n, 100)]
    out = []
    for f in faces:
        g = np.clip(np.rint(f * 255), 0, 255).astype(np.uint8)
        g = cv2.copyMakeBorder(g, 8, 8, 8, 8, cv2.BORDER_REPLICATE)
        g = cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)
        out.append(np.repeat(g[..., None], 3, axis=2))
    return out


def _resize(img: np.ndarray, height: int) -> np.ndarray:
    import cv2

    w = round(img.shape[1] * height / img.shape[0])
    return cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA)


GROUP_FACES = 9   # faces placed by group_photo


def group_photo() -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A 1200×560 canvas with nine real faces in two rows, and the tile (x1, y1, x2, y2) holding each."""
    canvas = np.full((560, 1200, 3), 200, np.uint8)
    canvas[:, :, 2] = 215
    tiles: list[tuple[int, int, int, int]] = []

    def paste(img: np.ndarray, x: int, y: int) -> None:
        h, w = img.shape[:2]
        canvas[y:y + h, x:x + w] = img
        tiles.append((x, y, x + w, y + h))

    # back row: three portraits cut to head and shoulders; front row: six LFW faces
    paste(_resize(astronaut()[20:330, 90:360], 260), 20, 10)
    paste(_resize(hopper()[60:460, 90:440], 260), 300, 10)
    paste(_resize(cameraman()[40:300, 130:340], 260), 610, 10)
    for k, face in enumerate(lfw_faces(6, 150)):
        paste(face, 20 + k * 195, 330 + (k % 2) * 40)
    return canvas, tiles


def no_face_images() -> dict[str, np.ndarray]:
    """Real photographs without a face (coffee cup, cat, rocket, coins, brick wall, Hubble deep field)."""
    import skimage.data

    grey = lambda a: np.repeat(a[..., None], 3, axis=2)  # noqa: E731
    return {"coffee": skimage.data.coffee(), "chelsea (cat)": skimage.data.chelsea(), "rocket": skimage.data.rocket(),
            "coins": grey(skimage.data.coins()), "brick": grey(skimage.data.brick()),
            "hubble": skimage.data.hubble_deep_field()[:512, :512]}


def face_video(path: str | Path, present: list[bool], fps: float = 10.0, size: int = 256) -> Path:
    """An MJPG AVI of real frames: the astronaut's face where ``present[i]``, the coffee photo elsewhere.

    The face drifts 2 px per frame, as a person sitting still does, so tracking has something to follow.
    """
    import cv2
    import skimage.data

    path = Path(path)
    face = astronaut()
    empty = cv2.resize(skimage.data.coffee(), (size + 64, size + 64), interpolation=cv2.INTER_AREA)
    big = cv2.resize(face, (size + 64, size + 64), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
    for i, has_face in enumerate(present):
        src = big if has_face else empty
        dx = 2 * i % 32
        writer.write(np.ascontiguousarray(src[16:16 + size, dx:dx + size, ::-1]))
    writer.release()
    return path
