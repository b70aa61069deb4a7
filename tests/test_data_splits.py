"""Data pool, registry errors, the real MNIST test split, and membership-split invariants."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mintkit.core.data import DATASETS, DataUnavailable, Pool, iterate_batches, load_pool, read_idx, synthetic_pool
from mintkit.core.splits import SETS, Split, SplitError, build_split, set_hash


def test_digits_pool_shapes_and_normalisation(digits_pool):
    assert digits_pool.x.shape == (1797, 1, 8, 8) and digits_pool.x.dtype == torch.uint8
    x, y = digits_pool.batch(torch.arange(5))
    assert x.shape == (5, 1, 8, 8) and x.min() >= -1 and x.max() <= 1 and y.dtype == torch.long


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="valid: digits, mnist"):
        load_pool("cifar11")


def test_missing_offline_dataset_names_path_and_leaves_nothing(tmp_path):
    with pytest.raises(DataUnavailable) as e:
        load_pool("cifar10", tmp_path, download=False)
    assert str(tmp_path) in str(e.value) and "Expected layout" in str(e.value)
    assert not list((tmp_path).rglob("*.pt")), "no cache entry may be written for a failed load"


def test_missing_mnist_raw_names_files(tmp_path):
    with pytest.raises(DataUnavailable, match="t10k-images-idx3-ubyte"):
        load_pool("mnist-test", tmp_path)


def test_imagefolder_missing_dir(tmp_path):
    with pytest.raises(DataUnavailable, match="not a directory"):
        load_pool(f"imagefolder:{tmp_path / 'nope'}")


def test_real_mnist_test_split(mnist_root):
    pool = load_pool("mnist-test", mnist_root)
    assert pool.x.shape == (10000, 1, 28, 28) and pool.num_classes == 10
    assert torch.bincount(pool.y).tolist()[:3] == [980, 1135, 1032]  # published MNIST test class counts
    assert read_idx(mnist_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz")[:4].tolist() == [7, 2, 1, 0]


def test_iterate_batches_covers_every_index_once():
    got = torch.cat(list(iterate_batches(np.arange(103), 10, shuffle=True, generator=torch.Generator().manual_seed(0))))
    assert sorted(got.tolist()) == list(range(103))


def test_split_sizes_and_disjointness(digits_pool):
    s = build_split(digits_pool, 600, 400, 200, seed=1)
    assert s.sizes() == {"members": 600, "external": 400, "mint_train_members": 400, "eval_members": 200,
                         "eval_nonmembers": 200}
    m = set(s["members"].tolist())
    assert not m & set(s["external"].tolist()) and not m & set(s["eval_nonmembers"].tolist())
    assert not set(s["eval_members"].tolist()) & set(s["mint_train_members"].tolist())


def test_paper_overlap_protocol_allows_eval_members_in_mint_training(digits_pool):
    s = build_split(digits_pool, 600, 400, 200, seed=1, overlap="paper")
    assert set(s["eval_members"].tolist()) <= set(s["mint_train_members"].tolist()) == set(s["members"].tolist())


def test_deliberate_overlap_raises_naming_sets_and_count(digits_pool):
    s = build_split(digits_pool, 600, 400, 200, seed=1)
    sets = dict(s.sets)
    sets["external"] = np.r_[sets["external"][:-3], sets["members"][:3]]
    with pytest.raises(SplitError, match="members and external overlap in 3 samples"):
        Split(sets, "digits", len(digits_pool), 1)


def test_split_roundtrip_and_tampering_detected(digits_pool, tmp_path):
    s = build_split(digits_pool, 500, 300, 100, seed=3)
    s.save(tmp_path)
    back = Split.load(tmp_path)
    assert back.hashes() == s.hashes() and back.sizes() == s.sizes()
    d = json.loads((tmp_path / "split.json").read_text())
    d["indices"]["eval_nonmembers"][0] = d["indices"]["members"][0]  # tamper: creates an overlap
    (tmp_path / "split.json").write_text(json.dumps(d))
    with pytest.raises(SplitError, match="overlap"):
        Split.load(tmp_path)


def test_split_seed_changes_sets(digits_pool):
    a, b = build_split(digits_pool, 500, 300, 100, seed=0), build_split(digits_pool, 500, 300, 100, seed=1)
    assert a.hashes()["members"] != b.hashes()["members"]
    assert build_split(digits_pool, 500, 300, 100, seed=0).hashes() == a.hashes()
    assert set_hash(np.array([3, 1, 2])) == set_hash(np.array([1, 2, 3]))


def test_split_too_small_pool_is_clear(digits_pool):
    with pytest.raises(SplitError, match="not enough samples for eval_nonmembers"):
        build_split(digits_pool, 1000, 700, 200)


def test_identity_disjoint_split_keeps_identities_whole():
    pool = synthetic_pool(n=600, num_classes=4, n_groups=60)
    s = build_split(pool, 200, 150, 50, seed=0, identity_disjoint=True)
    g = pool.group.numpy()
    ids = {k: set(g[v].tolist()) for k, v in s.sets.items()}
    assert not ids["members"] & ids["external"] and not ids["members"] & ids["eval_nonmembers"]
    assert not ids["external"] & ids["eval_nonmembers"]
    assert not ids["mint_train_members"] & ids["eval_members"]


def test_nonmembers_from_test_split():
    pool = synthetic_pool(n=400)
    pool.origin[300:] = 1
    s = build_split(pool, 150, 100, 50, nonmember_origin="test", overlap="paper")
    assert (s["eval_nonmembers"] >= 300).all() and (s["members"] < 300).all()


def test_registry_lists_all_design_names():
    for name in ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "gtsrb", "tinyimagenet", "synthetic"):
        assert name in DATASETS
    assert any(n.startswith("imagefolder:") for n in DATASETS)
    assert isinstance(synthetic_pool(), Pool) and set(SETS) == set(build_split(synthetic_pool(), 100, 100, 50).sets)
