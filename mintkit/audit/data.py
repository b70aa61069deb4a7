"""The audit's data: class-per-folder trees read into one Pool, with the audited model's own normalisation.

Every tree (members, non-members, optional external non-members) is read at its native image size
unless an ``image_size`` is asked for, in the native channel count unless ``channels`` is asked for,
and checked before anything is trained or written (see ``docs/audit.md``, "Bad input"). Class
indices follow the sorted union of the class-folder names of all trees, the convention of
``torchvision.datasets.ImageFolder``: a model trained with ImageFolder on any of the trees sees
the same index for the same folder name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mintkit.core.data import IMAGE_EXTS, Pool

SOURCES = ("members", "nonmembers", "external", "reference")  # values of AuditPool.source: index in this tuple
NORMALIZE_PRESETS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision / timm ImageNet weights
    "minus1-1": ((0.5,), (0.5,)),  # Normalize(0.5, 0.5): the MINT papers' models
    "0-1": ((0.0,), (1.0,)),  # ToTensor() alone
}
GRAY_MODES = ("1", "L", "I", "I;16", "F")  # PIL modes read as one channel
WHY_NONMEMBERS = ("--nonmembers is required: a folder of images of the same kind as the members that the audited model "
                  "was NOT trained on. The test asks whether the model treats the members differently from such "
                  "images, so without them there is nothing to compare with; the MINT model also learns from "
                  "non-members, and drawing those from the members would teach it that members are non-members")


class AuditInputError(ValueError):
    """Bad audit input (model, folders, parameters), reported before any training or writing."""


def parse_normalize(text: str, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) [channels] from a preset name or ``MEAN,STD`` (values on the 0..1 scale).

    ``MEAN,STD`` takes one number each (every channel) or one per channel separated by ``/``
    (``0.485/0.456/0.406,0.229/0.224/0.225``).
    """
    valid = f"valid: {', '.join(NORMALIZE_PRESETS)} or MEAN,STD (e.g. 0.1307,0.3081 or 0.5/0.5/0.5,0.2/0.2/0.2)"
    if not text:
        raise AuditInputError("--normalize is required: say how the audited model's inputs were scaled when it was "
                              f"trained (a wrong guess weakens every membership signal); {valid}")
    if text in NORMALIZE_PRESETS:
        mean, std = NORMALIZE_PRESETS[text]
    else:
        parts = text.split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            mean, std = (tuple(float(v) for v in p.split("/")) for p in parts)
        except ValueError:
            raise AuditInputError(f"--normalize {text!r} is not understood; {valid}") from None
    out = []
    for name, vals in (("mean", mean), ("std", std)):
        if len(vals) == 1:
            vals = vals * channels
        if len(vals) != channels:
            raise AuditInputError(f"--normalize {text!r} gives {len(vals)} {name} values but the images have {channels} "
                                  f"channel(s); use one value for every channel, or set --channels {len(vals)}")
        out.append(tuple(vals))
    if any(s <= 0 for s in out[1]):
        raise AuditInputError(f"--normalize {text!r}: every std must be positive")
    return out[0], out[1]


@dataclass
class AuditPool(Pool):
    """A Pool whose batches use the audited model's normalisation: ((x / 255) - mean) / std per channel.

    source: [N] index into SOURCES (which tree a sample came from); files: [N] paths; classes: names
    in label order.
    """

    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    source: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    files: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)

    def batch(self, idx: torch.Tensor, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [B, C, H, W] normalised as the audited model was trained, and labels [B]."""
        idx = idx.to(self.x.device)
        mean = torch.tensor(self.mean, dtype=dtype, device=self.x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=dtype, device=self.x.device).view(1, -1, 1, 1)
        return (self.x[idx].to(dtype).div_(255.0) - mean) / std, self.y[idx]

    def to(self, device: str | torch.device) -> AuditPool:
        def mv(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=True)
        return AuditPool(self.name, mv(self.x), mv(self.y), self.num_classes, mv(self.group), mv(self.origin),
                         dict(self.meta), self.mean, self.std, self.source, self.files, self.classes)

    def of(self, source: str) -> np.ndarray:
        """Pool indices [n] of one tree (members, nonmembers or external)."""
        return np.flatnonzero(self.source == SOURCES.index(source))


def scan_tree(path: str | Path, role: str) -> dict[str, list[Path]]:
    """{class folder name: sorted image paths} of a class-per-folder tree; clear errors for empty trees."""
    root = Path(path)
    if not str(path):
        raise AuditInputError(f"{role}: no folder given")
    if not root.is_dir():
        raise AuditInputError(f"{role}: {root} is not a directory; expected {root}/<class>/<image> "
                              f"with extensions {', '.join(IMAGE_EXTS)}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise AuditInputError(f"{role}: {root} holds no class folders; expected {root}/<class>/<image>")
    tree = {c: sorted(p for p in (root / c).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
            for c in classes}
    empty = [c for c, files in tree.items() if not files]
    if empty:
        raise AuditInputError(f"{role}: class folder(s) {empty[:5]} under {root} hold no images "
                              f"(extensions {', '.join(IMAGE_EXTS)}); remove them or add images")
    return tree


def _open(path: Path) -> Image.Image:
    try:
        im = Image.open(path)
        im.load()
        return im
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise AuditInputError(f"{path}: cannot be read as an image ({type(e).__name__}: {e})") from None


def read_trees(trees: dict[str, str | Path], image_size: int = 0, channels: int = 0) -> tuple[torch.Tensor, ...]:
    """Decode every image of `trees` ({role: path}, roles from SOURCES).

    Returns x [N, C, H, W] uint8, y [N] int64, source [N] int64, the file paths and the class names.
    image_size 0 keeps the native size (all images must share it); channels 0 keeps the native count
    (1 when every image is grayscale, else 3); 1 or 3 convert.
    """
    if channels not in (0, 1, 3):
        raise AuditInputError(f"--channels {channels}: use 0 (native), 1 (grayscale) or 3 (RGB)")
    scanned = {role: scan_tree(path, role) for role, path in trees.items()}
    classes = sorted(set().union(*[set(t) for t in scanned.values()]))
    items = [(p, classes.index(c), SOURCES.index(role))
             for role, t in scanned.items() for c, ps in t.items() for p in ps]
    images = [_open(p) for p, _, _ in items]
    if channels == 0:
        channels = 1 if all(im.mode in GRAY_MODES for im in images) else 3
    mode = "L" if channels == 1 else "RGB"
    if not image_size:
        sizes: dict[tuple[int, int], Path] = {}
        for (p, _, _), im in zip(items, images):
            sizes.setdefault(im.size, p)
        if len(sizes) > 1:
            ex = "; ".join(f"{w}x{h} ({p})" for (w, h), p in list(sizes.items())[:3])
            raise AuditInputError(f"images differ in size ({ex}); set --image-size to the side the audited model "
                                  "was trained on (every image is then resized to it)")
    arrays = []
    for im in images:
        im = im.convert(mode)
        if image_size:
            im = im.resize((image_size, image_size), Image.BILINEAR)
        a = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy())
        arrays.append(a.unsqueeze(0) if a.ndim == 2 else a.permute(2, 0, 1))
    x = torch.stack(arrays)
    y = torch.tensor([c for _, c, _ in items], dtype=torch.long)
    source = np.array([s for _, _, s in items], dtype=np.int64)
    return x, y, source, [str(p) for p, _, _ in items], classes


def load_trees(members: str, nonmembers: str, external: str = "", image_size: int = 0, channels: int = 0,
               normalize: str = "", reference: str = "") -> AuditPool:
    """The audit pool: members, non-members and (optionally) external non-members and reference data, one tree
    each. Reference images join no split set: they are the attacks' population (reference models train on them).

    Non-members are required: without them there is nothing the members could differ from, and the
    MINT model's non-member training data (E) would have to come from somewhere the audit cannot vouch for.
    """
    if not nonmembers:
        raise AuditInputError(WHY_NONMEMBERS)
    if not members:
        raise AuditInputError("--members is required: the folder of images whose use in training is in question")
    trees = {"members": members, "nonmembers": nonmembers} | ({"external": external} if external else {}) \
        | ({"reference": reference} if reference else {})
    resolved = {r: Path(p).resolve() for r, p in trees.items()}
    for a, pa in resolved.items():
        for b, pb in resolved.items():
            if a < b and (pa == pb or pa in pb.parents or pb in pa.parents):
                raise AuditInputError(f"--{a} ({trees[a]}) and --{b} ({trees[b]}) overlap: each set must be its own "
                                      "folder, not inside another")
    x, y, source, files, classes = read_trees(trees, image_size, channels)
    mean, std = parse_normalize(normalize, int(x.shape[1]))
    name = f"audit:{Path(members).name}"
    return AuditPool(name, x, y, len(classes), meta={"trees": {r: str(p) for r, p in trees.items()},
                                                      "normalize": normalize},
                     mean=mean, std=std, source=source, files=files, classes=classes)


def describe_pool(pool: AuditPool) -> dict:
    """Sizes per tree and image facts, for the report."""
    return {"images": {s: int((pool.source == i).sum()) for i, s in enumerate(SOURCES) if (pool.source == i).any()},
            "classes": len(pool.classes), "shape": list(pool.x.shape[1:]), "normalize": pool.meta["normalize"],
            "mean": list(pool.mean), "std": list(pool.std)}
