"""Datasets: embedded digits/shapes, transforms, CIFAR pickle folders, image folders with corrupt files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from rexnet.data import CorruptImageError, SkippedImage, build_datasets, build_train_transform, collate_skipping
from rexnet.data.transforms import AugmentConfig, RandAugmentMstd
from rexnet.errors import RexnetError

from .helpers import make_folder


def test_digits_split_is_fixed_and_disjoint():
    b = build_datasets("digits", 32)
    assert (len(b.train), len(b.val), b.num_classes) == (1438, 359, 10)
    assert b.class_names == [str(i) for i in range(10)]
    x, y = b.val[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == b.val.labels[0]
    b2 = build_datasets("digits", 32)
    assert torch.equal(b.val.images, b2.val.images)
    # no val image is also a train image (same pixels and label)
    train_keys = {(bytes(im.flatten().tolist()), int(lb)) for im, lb in zip(b.train.images, b.train.labels)}
    dup = sum((bytes(im.flatten().tolist()), int(lb)) in train_keys for im, lb in zip(b.val.images, b.val.labels))
    assert dup <= 3  # the UCI set itself holds a few identical images
    assert sorted(torch.bincount(b.val.labels).tolist())[0] >= 35  # stratified


def test_shapes_and_limits():
    b = build_datasets("shapes", 48, train_limit=100, val_limit=20)
    assert (len(b.train), len(b.val), b.num_classes) == (100, 20, 10)
    assert b.train[0][0].shape == (3, 48, 48)


def test_train_transform_recipe():
    t = build_train_transform(32, AugmentConfig())
    names = [type(op).__name__ for op in t.transforms]
    assert names == [
        "ToImage",
        "RandomResizedCrop",
        "RandomHorizontalFlip",
        "RandAugmentMstd",
        "ToDtype",
        "Normalize",
        "RandomErasing",
    ]
    assert t.transforms[1].scale == (0.08, 1.0) and t.transforms[-1].p == 0.2
    assert t.transforms[-1].value is None  # None = per-pixel normal noise (timm's --remode pixel)
    torch.manual_seed(0)
    ra = RandAugmentMstd(2, 9.0, 0.5)
    mags = []
    for _ in range(50):
        ra(torch.zeros(3, 8, 8, dtype=torch.uint8))
        mags.append(ra.magnitude)
    assert 85 <= np.mean(mags) <= 95 and len(set(mags)) > 2  # ~N(9, 0.5) on a 0-10 scale, 101 bins


def _cifar10(root, n=6):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        with open(root / name, "wb") as f:
            pickle.dump(d, f)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)


def test_cifar_folder(tmp_path):
    _cifar10(tmp_path)
    b = build_datasets(str(tmp_path), 32)
    assert (len(b.train), len(b.val), b.num_classes, b.class_names[1]) == (30, 6, 10, "c1")
    b = build_datasets(f"cifar10:{tmp_path}", 32, train=False)
    assert b.train is None and b.val[0][0].shape == (3, 32, 32)


def test_cifar_refuses_code_in_pickles(tmp_path):
    _cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(RexnetError, match="refused global"):
        build_datasets(str(tmp_path), 32)


def test_image_folder_skips_and_reports_corrupt(tmp_path):
    bad = make_folder(tmp_path)
    b = build_datasets(str(tmp_path), 16)
    assert (len(b.train), len(b.val), b.class_names) == (13, 4, ["cat", "dog"])
    items = [b.train[i] for i in range(len(b.train))]
    skipped = [s for s in items if isinstance(s, SkippedImage)]
    assert [s.path for s in skipped] == [str(bad)]
    x, y, sk = collate_skipping(items)
    assert x.shape == (12, 3, 16, 16) and len(y) == 12 and sk == skipped
    strict = build_datasets(str(tmp_path), 16, strict=True)
    idx = [i for i, (p, _) in enumerate(strict.train.samples) if p == str(bad)][0]
    with pytest.raises(CorruptImageError, match="broken.jpg"):
        strict.train[idx]


def test_plain_class_folder_gets_split(tmp_path):
    make_folder(tmp_path, corrupt=False)
    b = build_datasets(str(tmp_path / "train"), 16, val_fraction=0.5)
    assert len(b.train) == 6 and len(b.val) == 6


def test_unknown_dataset_lists_choices():
    with pytest.raises(RexnetError, match=r"digits \| shapes \| fashion-mnist \| fashion-mnist:DIR .* cifar10:DIR"):
        build_datasets("imagenet-please")
