"""CIFAR-10 re-encoded as JPEG (`cifar10-jpeg`): read from a tarball, cached outside the data folder, and the
`cifar10` profile that plans every CIFAR-10 cell with it as a labelled stand-in."""
from __future__ import annotations

import io
import json
import random
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mintkit.batch import cli, runner
from mintkit.batch.provenance import describe_data, place_standins, reason
from mintkit.core import data as data_mod
from mintkit.core.cifar_jpeg import CIFAR10_CLASSES, TARBALL
from mintkit.core.data import DATASETS, TEST, TRAIN, DataUnavailable, data_cache, load_pool
from mintkit.core.records import Run
from mintkit.papers import amint
from mintkit.reference import label_dataset

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PER_CLASS = {"train": 3, "test": 2}


def _colour(split: str, cls: int, i: int) -> tuple[int, int, int]:
    """A flat colour that encodes (class, split, index), so a decoded image can be checked against its label."""
    return 10 + 24 * cls, 40 if split == "train" else 200, 30 + 50 * i


def _jpeg(colour: tuple[int, int, int], size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="JPEG", quality=75)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def make_tarball(root: Path, members: list[tuple[str, bytes]] | None = None) -> Path:
    """`root`/cifar10-jpeg/cifar10-jpeg.tar.gz: PER_CLASS images per class and split, written in a shuffled order,
    some with a ./ prefix, plus a README and folder entries (skipped by the reader); `members` replaces them."""
    if members is None:
        members = [(f"{split}/{c}/{i:04d}.jpg", _jpeg(_colour(split, k, i)))
                   for split, n in PER_CLASS.items() for k, c in enumerate(CIFAR10_CLASSES) for i in range(n)]
        random.Random(0).shuffle(members)
        members = [(("./" + n) if j % 3 == 0 else n, b) for j, (n, b) in enumerate(members)]
        members.append(("README.md", b"not an image"))
    path = root / TARBALL
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo("train")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, payload in members:
            _add(tar, name, payload)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("MINTKIT_DATA_CACHE", str(folder))
    return folder


@pytest.fixture
def cifar_root(tmp_path) -> Path:
    root = tmp_path / "data"
    make_tarball(root)
    return root


def test_fixture_tarball_loads_with_labels_and_splits_from_the_folders(cifar_root, cache):
    pool = load_pool("cifar10-jpeg", cifar_root)
    n_train, n_test = 10 * PER_CLASS["train"], 10 * PER_CLASS["test"]
    assert pool.name == "cifar10-jpeg" and pool.num_classes == 10 and "cifar10-jpeg" in DATASETS
    assert pool.x.shape == (n_train + n_test, 3, 32, 32) and pool.x.dtype == torch.uint8 and pool.y.dtype == torch.long
    assert len(pool.indices(TRAIN)) == n_train and len(pool.indices(TEST)) == n_test
    # every decoded image carries the colour its folder gave it (JPEG shifts a flat colour by a few levels)
    red, green = pool.x[:, 0].float().mean((1, 2)), pool.x[:, 1].float().mean((1, 2))
    assert torch.equal(((red - 10) / 24).round().long(), pool.y)
    assert torch.equal((green > 120).long(), pool.origin)
    assert torch.bincount(pool.y[pool.origin == TRAIN]).tolist() == [PER_CLASS["train"]] * 10
    assert torch.bincount(pool.y[pool.origin == TEST]).tolist() == [PER_CLASS["test"]] * 10


def test_decoded_pool_is_cached_outside_the_data_folder_and_reused(cifar_root, cache, monkeypatch):
    first = load_pool("cifar10-jpeg", cifar_root)
    entry = data_cache("cifar10-jpeg", cifar_root, None)
    assert entry.is_file() and entry.parent == cache
    assert [p for p in cifar_root.rglob("*") if p.is_file()] == [cifar_root / TARBALL]

    def no_decode(*_a, **_k):
        raise AssertionError("the tarball was decoded again despite the cache")
    monkeypatch.setattr(data_mod, "read_jpeg_tarball", no_decode)
    second = load_pool("cifar10-jpeg", cifar_root)
    assert all(torch.equal(getattr(first, k), getattr(second, k)) for k in ("x", "y", "origin"))


def test_resized_pools_have_their_own_entries_and_decode_the_tarball_once(cifar_root, cache, monkeypatch):
    small = load_pool("cifar10-jpeg", cifar_root, image_size=8)
    assert small.x.shape[1:] == (3, 8, 8) and small.x.dtype == torch.uint8
    assert all(data_cache("cifar10-jpeg", cifar_root, size).is_file() for size in (8, None))
    monkeypatch.setattr(data_mod, "read_jpeg_tarball", lambda *a: pytest.fail("decoded the tarball a second time"))
    big = load_pool("cifar10-jpeg", cifar_root, image_size=64)
    assert big.x.shape[1:] == (3, 64, 64) and torch.equal(big.y, small.y) and torch.equal(big.origin, small.origin)


def test_missing_tarball_names_the_expected_path_and_the_fix(tmp_path, cache):
    with pytest.raises(DataUnavailable) as e:
        load_pool("cifar10-jpeg", tmp_path)
    msg = str(e.value)
    assert str(tmp_path / TARBALL) in msg and "data_root" in msg and "airplane" in msg
    assert not cache.exists(), "no cache entry may be written for a failed load"


def test_unknown_class_folder_and_missing_split_are_refused(tmp_path, cache):
    img = _jpeg((0, 0, 0))
    make_tarball(tmp_path / "a", [("train/airplane/0.jpg", img), ("test/aeroplane/0.jpg", img)])
    with pytest.raises(ValueError, match="'aeroplane'; valid: airplane, automobile"):
        load_pool("cifar10-jpeg", tmp_path / "a")
    make_tarball(tmp_path / "b", [("train/airplane/0.jpg", img)])
    with pytest.raises(ValueError, match=r"no images under test/<class>/"):
        load_pool("cifar10-jpeg", tmp_path / "b")
    make_tarball(tmp_path / "c", [("train/airplane/0.jpg", img), ("test/airplane/0.jpg", _jpeg((0, 0, 0), 16))])
    with pytest.raises(ValueError, match="all images must be one size"):
        load_pool("cifar10-jpeg", tmp_path / "c")


def _cells(runs) -> dict[str, set]:
    out: dict[str, set] = {"amint": set(), "gmint": set()}
    for r in runs:
        out[r.paper].add((r.params.get("setup") if r.paper == "amint" else "all", r.params["arch"], r.params["seed"]))
    return out


ARCHS = {"mobilenet", "resnet50", "resnet101", "densenet121", "xception", "vit"}


def test_cifar10_profile_plans_every_cell_on_the_labelled_stand_in(cifar_root, capsys):
    runs, notes = runner.plan_batch("cifar10", ["amint", "gmint"], cifar_root / "runs",
                                    overrides={"data_root": str(cifar_root)})
    cells = _cells(runs)
    assert cells["amint"] == {(s, a, k) for s in ("entry", "middle", "output") for a in ARCHS for k in range(3)}
    assert cells["gmint"] == {("all", a, k) for a in ARCHS for k in range(3)}
    assert len(runs) == 72 and {r.params["dataset"] for r in runs} == {"cifar10-jpeg"}
    assert {r.params["image_size"] for r in runs if r.paper == "amint"} == {64}  # the preset's recipe, unchanged
    assert {r.params["reduction"] for r in runs if r.paper == "gmint"} == {"mean"}
    assert len(notes) == 2 and all("stand-in: cifar10-jpeg = CIFAR-10 (JPEG q75 stand-in)" in n for n in notes)
    assert cli.main(["reproduce", "--profile", "cifar10", "--dry-run", "--verbose", "-p", "data_root", str(cifar_root),
                     "--out", str(cifar_root / "runs")]) == 0
    out = capsys.readouterr().out
    # the CLI plans every paper the profile names: aMINT's and gMINT's 72 plus MINT's Appendix (Tables 8 and 9)
    mint, _ = runner.plan_batch("cifar10", ["mint"], cifar_root / "runs", overrides={"data_root": str(cifar_root)})
    assert len(mint) == 12 and {r.params["dataset"] for r in mint} == {"cifar10-jpeg"}
    assert out.count("    todo ") == 84 and out.count("'dataset': 'cifar10-jpeg'") == 84
    assert "CIFAR-10 (JPEG q75 stand-in)" in out


def test_cifar10_profile_keeps_cifar10_when_its_files_are_there_or_no_stand_in_is(tmp_path):
    runs, notes = runner.plan_batch("cifar10", ["gmint"], tmp_path / "runs", overrides={"data_root": str(tmp_path)})
    # neither torchvision's files nor the tarball: no stand-in, torchvision fetches CIFAR-10 when the run starts
    assert {r.params["dataset"] for r in runs} == {"cifar10"} and not notes and len(runs) == 18
    make_tarball(tmp_path)
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    for f in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        (base / f).write_bytes(b"")
    runs, notes = runner.plan_batch("cifar10", ["gmint"], tmp_path / "runs", overrides={"data_root": str(tmp_path)})
    assert {r.params["dataset"] for r in runs} == {"cifar10"} and not notes and len(runs) == 18


def test_stand_in_rows_say_jpeg_stand_in_and_sit_beside_cifar10(tmp_path):
    (tmp_path / "params.json").write_text(json.dumps({"dataset": "cifar10-jpeg"}))
    (tmp_path / "split.json").write_text(json.dumps({"pool": "cifar10-jpeg", "pool_size": 60000,
                                                     "sizes": {"members": 25000, "external": 25000}}))
    data = describe_data(tmp_path)
    assert data.startswith("CIFAR-10 (JPEG q75 stand-in)") and "60,000 images" in data and "D 25,000" in data
    assert label_dataset("cifar10-jpeg") == "CIFAR-10 (JPEG q75 stand-in)"
    rows = place_standins(pd.DataFrame({"dataset": [label_dataset("cifar10-jpeg")]}))
    assert rows["dataset"].tolist() == ["CIFAR-10"]
    assert reason({}, data, pd.DataFrame(columns=["reason"])).startswith("stand-in data")


def test_amint_tables_of_a_stand_in_run_sit_beside_the_cifar10_cells(tmp_path):
    P = amint.Params(dataset="cifar10-jpeg", arch="mobilenet", setup="entry")
    run = Run(tmp_path / "run", "amint", {}, protocol="paper")
    run.add("accuracy", 0.7, table="Table 1", setup="Entry", condition="Active", **P.labels)
    t = amint.paper_tables(run, P)["Table 1"]
    assert "0.86 | 0.70" in t.to_string()  # published CIFAR-10 MobileNet Entry, Active: 0.86
    assert "CIFAR-10 (JPEG q75 stand-in)" in t.attrs["title"] and "published cells are CIFAR-10)" in t.attrs["title"]


@pytest.mark.slow
def test_real_cifar10_jpeg_tarball(cache):
    """The shared tarball: 60,000 images, 50,000 train / 10,000 test, 6,000 per class (decoded afresh here)."""
    if not (SHARED / TARBALL).is_file():
        pytest.skip(f"CIFAR-10 JPEG tarball not found at {SHARED / TARBALL}")
    t0 = time.perf_counter()
    pool = load_pool("cifar10-jpeg", SHARED)
    seconds = time.perf_counter() - t0
    assert pool.x.shape == (60000, 3, 32, 32) and pool.x.dtype == torch.uint8
    assert len(pool.indices(TRAIN)) == 50000 and len(pool.indices(TEST)) == 10000
    assert torch.bincount(pool.y).tolist() == [6000] * 10
    assert torch.bincount(pool.y[pool.origin == TEST]).tolist() == [1000] * 10
    means = pool.x.float().mean((0, 2, 3)).numpy() / 255  # CIFAR-10's channel means: 0.491 / 0.482 / 0.447
    assert np.allclose(means, [0.491, 0.482, 0.447], atol=0.01), means
    print(f"decoded the CIFAR-10 JPEG tarball in {seconds:.1f} s")
