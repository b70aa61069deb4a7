"""Datasets as one device-resident pool of uint8 images, batched by index slices.

Every experiment draws its membership sets from a `Pool`: all images of a dataset (official
train and test splits concatenated, `origin` says which), kept as uint8 so that even Tiny
ImageNet fits on a GPU, normalised to [-1, 1] per batch (the papers' `Normalize(0.5, 0.5)`).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.datasets as tvd
from PIL import Image
from sklearn.datasets import load_digits
from torchvision.datasets.utils import download_and_extract_archive

from mintkit.core.cifar_jpeg import CIFAR10_CLASSES, TARBALL, read_jpeg_tarball
from mintkit.core.paths import home as paths_home, resolve as resolve_path, shareable

TRAIN, TEST = 0, 1  # values of Pool.origin

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "gtsrb", "tinyimagenet",
            "imagefolder:<path>", "synthetic", "mnist-test", "cifar10-jpeg")

TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"


def is_dataset_name(spec: str) -> bool:
    """Whether `spec` names a dataset `load_pool` knows: a registry name or ``imagefolder:<path>`` (the path is
    not opened here, so that presets with placeholder paths validate on any machine)."""
    if spec.startswith("imagefolder:"):
        return len(spec) > len("imagefolder:") and spec != "imagefolder:<path>"
    return spec in DATASETS


class DataUnavailable(FileNotFoundError):
    """Dataset files are missing and could not be fetched."""


@dataclass
class Pool:
    """All samples of one dataset. x: [N, C, H, W] uint8; y: [N] int64; group, origin: [N] int64."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    group: torch.Tensor | None = None  # identity per sample (faces); None -> no identity structure
    origin: torch.Tensor | None = None  # TRAIN / TEST of the official split; None -> all TRAIN
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.x)
        if self.origin is None:
            self.origin = torch.full((n,), TRAIN, dtype=torch.long)
        if self.group is None:
            self.group = torch.arange(n)
        assert len(self.y) == n == len(self.origin) == len(self.group), "pool tensors disagree in length"

    def __len__(self) -> int:
        return len(self.x)

    @property
    def in_channels(self) -> int:
        return int(self.x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x.shape[-1])

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: str | torch.device) -> "Pool":
        """Move every tensor to `device` once; batches are then slices, no host copies."""
        mv = lambda t: t.to(device, non_blocking=True)
        return Pool(self.name, mv(self.x), mv(self.y), self.num_classes, mv(self.group), mv(self.origin), dict(self.meta))

    def batch(self, idx: torch.Tensor, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [B, C, H, W] in [-1, 1] and labels [B] for pool indices `idx` [B]."""
        idx = idx.to(self.x.device)
        return self.x[idx].to(dtype).div_(127.5).sub_(1.0), self.y[idx]

    def indices(self, origin: int | None = None) -> np.ndarray:
        """Pool indices [M] of one official split (TRAIN/TEST), or all."""
        o = self.origin.cpu().numpy()
        return np.arange(len(self)) if origin is None else np.flatnonzero(o == origin)


def iterate_batches(idx: torch.Tensor | np.ndarray, batch_size: int, shuffle: bool = False,
                    generator: torch.Generator | None = None, drop_last: bool = False) -> Iterator[torch.Tensor]:
    """Yield index slices [<=B] of `idx`, in a random order when `shuffle`."""
    idx = torch.as_tensor(idx, dtype=torch.long)
    if shuffle:
        idx = idx[torch.randperm(len(idx), generator=generator)]
    stop = len(idx) - (len(idx) % batch_size if drop_last else 0)
    for s in range(0, stop, batch_size):
        yield idx[s:s + batch_size]


# ---------------------------------------------------------------------------------- loaders


def _to_uint8_nchw(arr: np.ndarray) -> torch.Tensor:
    """[N,H,W] or [N,H,W,C] uint8 -> [N,C,H,W] uint8 tensor."""
    t = torch.from_numpy(np.ascontiguousarray(arr))
    return t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()


def resize_images(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize uint8 [N,C,H,W] to size×size (bilinear, antialiased), in chunks to bound memory; None keeps x."""
    if size is None or (x.shape[-1] == size and x.shape[-2] == size):
        return x
    out = [F.interpolate(c.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
           .round_().clamp_(0, 255).to(torch.uint8) for c in x.split(4096)]
    return torch.cat(out)


def load_digits_pool() -> Pool:
    """scikit-learn's bundled 8×8 digits (1,797 images, values 0..16 rescaled to 0..255): offline."""
    d = load_digits()
    x = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return Pool("digits", _to_uint8_nchw(x), torch.as_tensor(d.target, dtype=torch.long), 10)


def synthetic_pool(n: int = 512, num_classes: int = 4, channels: int = 1, size: int = 8, seed: int = 0,
                   n_groups: int | None = None) -> Pool:
    """Class-structured random images for tests: class prototypes plus noise; optional identities."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(num_classes, channels, size, size, generator=g) * 255
    y = torch.arange(n) % num_classes
    noise = torch.randn(n, channels, size, size, generator=g) * 40
    x = (protos[y] + noise).clamp(0, 255).to(torch.uint8)
    group = None if n_groups is None else torch.arange(n) % n_groups
    return Pool("synthetic", x, y, num_classes, group=group)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally .gz), as MNIST ships: big-endian header, then raw bytes."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape).copy()


def load_mnist_test_pool(raw_dir: str | Path) -> Pool:
    """The real MNIST test split (10,000 images) from torchvision-named IDX files in `raw_dir`."""
    raw = Path(raw_dir)
    files = [raw / "t10k-images-idx3-ubyte.gz", raw / "t10k-labels-idx1-ubyte.gz"]
    files = [f if f.exists() else f.with_suffix("") for f in files]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise DataUnavailable(f"mnist-test: missing {missing}; expected torchvision's MNIST raw files "
                              f"t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz) in {raw}")
    x, y = read_idx(files[0]), read_idx(files[1])
    return Pool("mnist-test", _to_uint8_nchw(x), torch.as_tensor(y.astype(np.int64)), 10,
                meta={"source": str(raw)})


_TV = {  # name -> (torchvision class name, how train/test are selected, num_classes, hint)
    "mnist": ("MNIST", "train", 10), "fashion-mnist": ("FashionMNIST", "train", 10),
    "cifar10": ("CIFAR10", "train", 10), "cifar100": ("CIFAR100", "train", 100),
    "gtsrb": ("GTSRB", "split", 43),
}


def _torchvision_split(name: str, root: Path, train: bool, download: bool, size: int | None):
    cls_name, style, _ = _TV[name]
    cls = getattr(tvd, cls_name)
    kw = {"train": train} if style == "train" else {"split": "train" if train else "test"}
    ds = cls(str(root), download=download, **kw)
    if hasattr(ds, "data") and isinstance(getattr(ds, "data"), (np.ndarray, torch.Tensor)):
        arr = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else ds.data
        targets = np.asarray(ds.targets)
        return resize_images(_to_uint8_nchw(arr), size), torch.as_tensor(targets, dtype=torch.long)
    # GTSRB: variable-size PPM files -> decode and resize each (done once, then cached)
    size = size or 32
    xs, ys = [], []
    for img, t in ds:
        xs.append(torch.from_numpy(np.asarray(img.convert("RGB").resize((size, size)))).permute(2, 0, 1))
        ys.append(t)
    return torch.stack(xs), torch.as_tensor(ys, dtype=torch.long)


def data_cache(name: str, root: Path, image_size: int | None) -> Path:
    """Where the decoded uint8 tensors of dataset `name` read from `root` are cached: never inside `root` (a
    data folder may be read-only and shared), but under $MINTKIT_DATA_CACHE, else ~/.cache/mintkit/data, one
    file per dataset, size and resolved root (so two roots never share an entry, and the CLI and Jupyter,
    whatever their working directory, share one cache)."""
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    base = os.environ.get("MINTKIT_DATA_CACHE") or home / "mintkit" / "data"
    tag = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:10]
    return Path(base) / f"{name}-{image_size or 'native'}-{tag}.pt"


def _cached(path: Path, build: Callable[[], dict]) -> dict:
    """Load a tensor cache file, or build it and write it atomically (temp file + rename)."""
    if path.exists():
        return torch.load(path, weights_only=True)
    obj = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        shareable(tmp)  # tempfile's 0600 would hide a shared cache from the group
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return obj


def _offline_error(name: str, root: Path, layout: str, url: str, err: Exception) -> DataUnavailable:
    return DataUnavailable(
        f"dataset '{name}' is not in {root} and could not be downloaded ({type(err).__name__}: {err}).\n"
        f"Expected layout: {layout}\nFetch it by hand from {url} into {root}, or run once on a machine "
        f"with a network (mintkit downloads it on first use).")


def existing_root(name: str, data_root: str | Path) -> Path:
    """`data_root` resolved (mintkit.core.paths); DataUnavailable when the folder does not exist: a mistyped
    data_root must not become an empty folder that a download then fills (or fails in)."""
    root = resolve_path(data_root)
    if not root.is_dir():
        raise DataUnavailable(f"dataset '{name}': data_root {root} does not exist (relative paths resolve against "
                              f"{paths_home()}; see mintkit.core.paths). Create the folder to let mintkit download "
                              "the dataset into it, or point data_root at the folder holding your datasets.")
    return root


def load_torchvision_pool(name: str, data_root: str | Path, image_size: int | None = None,
                          download: bool = True) -> Pool:
    """MNIST / Fashion-MNIST / CIFAR-10/100 / GTSRB via torchvision: train and test splits in one pool."""
    root = existing_root(name, data_root)
    cache = data_cache(name, root, image_size)

    def build() -> dict:
        try:
            xtr, ytr = _torchvision_split(name, root, True, download, image_size)
            xte, yte = _torchvision_split(name, root, False, download, image_size)
        except (RuntimeError, OSError) as e:
            raise _offline_error(name, root, f"torchvision.datasets.{_TV[name][0]} files under {root}",
                                 f"the torchvision {_TV[name][0]} mirrors", e) from e
        return {"x": torch.cat([xtr, xte]), "y": torch.cat([ytr, yte]),
                "origin": torch.cat([torch.full((len(ytr),), TRAIN), torch.full((len(yte),), TEST)])}

    d = _cached(cache, build)
    return Pool(name, d["x"], d["y"], _TV[name][2], origin=d["origin"].long(), meta={"root": str(root)})


def load_tinyimagenet_pool(data_root: str | Path, image_size: int | None = None, download: bool = True) -> Pool:
    """Tiny ImageNet: 100k train + 10k labelled val (used as the test split), 200 classes, 64×64."""
    root = existing_root("tinyimagenet", data_root)
    base = root / "tiny-imagenet-200"
    if not base.exists():
        try:
            if not download:
                raise FileNotFoundError(base)
            download_and_extract_archive(TINY_URL, str(root), md5=TINY_MD5)
        except Exception as e:  # noqa: BLE001 - any failure to fetch becomes the same clear error
            raise _offline_error("tinyimagenet", root, "tiny-imagenet-200/{train/<wnid>/images/*.JPEG, "
                                 "val/images/*.JPEG, val/val_annotations.txt, wnids.txt}", TINY_URL, e) from e
    cache = data_cache("tinyimagenet", root, image_size)

    def build() -> dict:
        wnids = (base / "wnids.txt").read_text().split()
        cls = {w: i for i, w in enumerate(wnids)}
        items = [(p, cls[w], TRAIN) for w in wnids for p in sorted((base / "train" / w / "images").glob("*.JPEG"))]
        for line in (base / "val" / "val_annotations.txt").read_text().splitlines():
            f, w = line.split("\t")[:2]
            items.append((base / "val" / "images" / f, cls[w], TEST))
        size = image_size or 64
        x = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("RGB").resize((size, size))))
                         .permute(2, 0, 1) for p, _, _ in items])
        return {"x": x, "y": torch.tensor([c for _, c, _ in items]), "origin": torch.tensor([o for *_, o in items])}

    d = _cached(cache, build)
    return Pool("tinyimagenet", d["x"], d["y"], 200, origin=d["origin"].long(), meta={"root": str(root)})


def load_cifar10_jpeg_pool(data_root: str | Path, image_size: int | None = None) -> Pool:
    """CIFAR-10 re-encoded as JPEG (``cifar10-jpeg/cifar10-jpeg.tar.gz`` in `data_root`, see core.cifar_jpeg):
    x [N, 3, 32, 32] uint8 (50,000 train + 10,000 test in the full tarball), origin from the split folder.
    Decoded once from the tarball, never extracted, then cached outside `data_root` (:func:`data_cache`), one
    entry per size."""
    root = Path(data_root)
    tar = root / TARBALL
    if not tar.is_file():  # checked before the cache, so a cache entry never hides a missing tarball
        raise DataUnavailable(f"cifar10-jpeg: {tar} not found. Expected CIFAR-10 re-encoded as JPEG in a .tar.gz at "
                              f"that path (train/<class>/*.jpg, test/<class>/*.jpg; classes "
                              f"{', '.join(CIFAR10_CLASSES)}); put it there or pass the folder that holds "
                              f"{TARBALL.parent}/ as data_root (-p data_root DIR)")

    def build() -> dict:
        if image_size is not None:  # resized from the native entry: the tarball is decoded once for every size
            native = load_cifar10_jpeg_pool(root)
            return {"x": resize_images(native.x, image_size), "y": native.y, "origin": native.origin}
        x, y, is_test = read_jpeg_tarball(tar)
        return {"x": _to_uint8_nchw(x), "y": torch.from_numpy(y),
                "origin": torch.from_numpy(np.where(is_test, TEST, TRAIN))}

    d = _cached(data_cache("cifar10-jpeg", root, image_size), build)
    return Pool("cifar10-jpeg", d["x"], d["y"], len(CIFAR10_CLASSES), origin=d["origin"].long(),
                meta={"root": str(root), "source": str(tar)})


IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".webp")


def load_imagefolder_pool(path: str | Path, image_size: int | None = 112, grayscale: bool = False) -> Pool:
    """Any class-per-folder tree (face identities: CASIA-WebFace, LFW, your own): group = class = folder."""
    root = Path(path)
    if not root.is_dir():
        raise DataUnavailable(f"imagefolder: {root} is not a directory; expected <root>/<class or identity>/<image>"
                              f" with extensions {IMAGE_EXTS}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    items = [(p, c) for c, name in enumerate(classes) for p in sorted((root / name).iterdir())
             if p.suffix.lower() in IMAGE_EXTS]
    if not items:
        raise DataUnavailable(f"imagefolder: no images under {root}/<class>/ (extensions {IMAGE_EXTS})")
    mode = "L" if grayscale else "RGB"
    imgs = []
    for p, _ in items:
        im = Image.open(p).convert(mode)
        if image_size is not None:
            im = im.resize((image_size, image_size))
        arr = np.asarray(im)
        imgs.append(torch.from_numpy(arr).unsqueeze(0) if arr.ndim == 2 else torch.from_numpy(arr).permute(2, 0, 1))
    y = torch.tensor([c for _, c in items])
    return Pool(f"imagefolder:{root}", torch.stack(imgs), y, len(classes), group=y.clone(),
                meta={"root": str(root), "classes": len(classes)})


def load_pool(name: str, data_root: str | Path = "data", image_size: int | None = None,
              download: bool = True) -> Pool:
    """Load dataset `name` (see DATASETS) as a Pool; `image_size` resizes (None keeps native)."""
    if name == "digits":
        pool = load_digits_pool()
    elif name == "synthetic":
        pool = synthetic_pool()
    elif name == "mnist-test":
        pool = load_mnist_test_pool(resolve_path(data_root) / "MNIST" / "raw")
    elif name in _TV:
        return load_torchvision_pool(name, data_root, image_size, download)
    elif name == "cifar10-jpeg":
        return load_cifar10_jpeg_pool(data_root, image_size)
    elif name == "tinyimagenet":
        return load_tinyimagenet_pool(data_root, image_size, download)
    elif name.startswith("imagefolder:"):
        return load_imagefolder_pool(str(resolve_path(name.split(":", 1)[1])), image_size or 112)
    else:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    if image_size is not None:
        pool.x = resize_images(pool.x, image_size)
    return pool


def concat_pools(parts: list[Pool]) -> Pool:
    """One pool of `parts` in order, in the first part's format: the others' images resized to its side and
    converted to its channels (mean of the channels for grey, the grey channel repeated for colour).

    The first part keeps its labels, identities and official split; every later part gets label 0 (its
    classes are not the first part's: use its samples only as non-members), identities offset past all
    earlier ones (no identity is shared across parts) and origin TRAIN. ``meta`` is the first part's plus
    ``parts`` (the names) and ``part`` [N] (index of the part each sample comes from). One part: returned as is.
    """
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    xs, ys, groups, origins, offset = [], [], [], [], 0
    for i, p in enumerate(parts):
        x = resize_images(p.x.cpu(), first.image_size)
        if x.shape[1] != first.in_channels:
            x = (x.float().mean(1, keepdim=True).round().to(torch.uint8) if first.in_channels == 1
                 else x[:, :1].repeat(1, first.in_channels, 1, 1))
        xs.append(x)
        ys.append(p.y.cpu() if i == 0 else torch.zeros(len(p), dtype=torch.long))
        origins.append(p.origin.cpu() if i == 0 else torch.full((len(p),), TRAIN, dtype=torch.long))
        groups.append(p.group.cpu() + offset)
        offset = int(groups[-1].max()) + 1
    part = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    return Pool(first.name, torch.cat(xs), torch.cat(ys), first.num_classes, torch.cat(groups), torch.cat(origins),
                dict(first.meta) | {"parts": [p.name for p in parts], "part": part})
