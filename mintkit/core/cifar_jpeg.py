"""CIFAR-10 re-encoded as JPEG, decoded straight from its tarball (never extracted).

The tarball holds ``train/<class>/<name>.jpg`` and ``test/<class>/<name>.jpg`` (an optional ``./`` prefix
is accepted); the class folders are named as CIFAR-10's classes and labelled in CIFAR-10's order. The pixels
are lossy re-encodings, not CIFAR-10's, so a result on them is a stand-in for CIFAR-10, never CIFAR-10
(`mintkit.reference.DATASET_LABELS`). `mintkit.core.data.load_pool("cifar10-jpeg")` caches the decoded arrays.
"""
from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TARBALL = Path("cifar10-jpeg") / "cifar10-jpeg.tar.gz"  # relative to data_root
SPLITS = ("train", "test")
_IMAGE = re.compile(r"\.jpe?g$", re.IGNORECASE)
_LAYOUT = "train/<class>/<name>.jpg and test/<class>/<name>.jpg"


def read_jpeg_tarball(path: str | Path, classes: tuple[str, ...] = CIFAR10_CLASSES
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode every JPEG member of the tarball `path` as RGB.

    Returns x [N, H, W, 3] uint8, y [N] int64 (index of the class folder in `classes`) and is_test [N] bool
    (from the ``test/`` folder), ordered by split, class, then file name, so the order never depends on how
    the archive was written. Members that are not JPEGs (folders, READMEs) are skipped; a JPEG outside
    ``train|test/<class>/``, an unknown class, images of different sizes or a split without images raise
    ValueError naming the member and what was expected.
    """
    path = Path(path)
    cls_index = {c: i for i, c in enumerate(classes)}
    items: list[tuple[int, int, str, np.ndarray]] = []
    try:
        with tarfile.open(path, "r:*") as tar:
            for m in tar:  # streamed in archive order: one pass over the compressed file
                if not (m.isfile() and _IMAGE.search(m.name)):
                    continue
                parts = m.name.removeprefix("./").split("/")
                if len(parts) != 3 or parts[0] not in SPLITS:
                    raise ValueError(f"{path}: member {m.name!r} is not laid out as {_LAYOUT}")
                if parts[1] not in cls_index:
                    raise ValueError(f"{path}: member {m.name!r} has class folder {parts[1]!r}; "
                                     f"valid: {', '.join(classes)}")
                with Image.open(io.BytesIO(tar.extractfile(m).read())) as im:
                    arr = np.asarray(im.convert("RGB"))
                if items and arr.shape != items[0][3].shape:
                    raise ValueError(f"{path}: member {m.name!r} is {arr.shape[1]}x{arr.shape[0]}, the first image "
                                     f"{items[0][3].shape[1]}x{items[0][3].shape[0]}; all images must be one size")
                items.append((SPLITS.index(parts[0]), cls_index[parts[1]], parts[2], arr))
    except tarfile.TarError as e:
        raise ValueError(f"{path}: not a readable tar archive ({e})") from e
    empty = [s for i, s in enumerate(SPLITS) if not any(it[0] == i for it in items)]
    if empty:
        raise ValueError(f"{path}: no images under {', '.join(f'{s}/<class>/' for s in empty)} (expected {_LAYOUT})")
    items.sort(key=lambda it: it[:3])
    x = np.stack([it[3] for it in items])
    y = np.array([it[1] for it in items], dtype=np.int64)
    is_test = np.array([it[0] == SPLITS.index("test") for it in items])
    return x, y, is_test
