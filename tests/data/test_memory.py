"""Image folders decoded into memory (issue 26): the same pixels and labels as the folder, corrupt files
reported, folders that do not fit left on the per-image path, and the loaders that use them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset

import rexnet.data.memory as memory
from rexnet.data import SafeImageFolder, build_eval_transform
from rexnet.data.batched import TensorBatchLoader
from rexnet.data.memory import TensorEvalLoader, decode_folder, eval_tensors, folder_source
from rexnet.errors import CorruptImageError
from rexnet.train import TrainConfig
from rexnet.train.loaders import eval_loader, in_memory, loader_workers, train_loader
from rexnet.train.sampling import EpochSampler


def grey_folder(root, n=6, size=(12, 10), classes=("a", "b")):
    rng = np.random.default_rng(1)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, size[::-1], dtype=np.uint8), "L").save(root / c / f"{i}.png")
    return root


def test_decodes_grey_folder_as_one_channel(tmp_path):
    ds = SafeImageFolder(grey_folder(tmp_path / "f"))
    cached = decode_folder(ds)
    assert cached is not None and not cached.skipped
    x = cached.dataset.images
    assert x.dtype == torch.uint8 and x.shape == (12, 1, 10, 12)
    for i, (path, label) in enumerate(ds.samples):
        assert torch.equal(x[i, 0], torch.from_numpy(np.array(Image.open(path))))
        assert int(cached.dataset.labels[i]) == label
    assert cached.dataset.classes == ds.classes


def test_rgb_folder_with_a_corrupt_file(tmp_path):
    from tests.train.helpers import make_folder

    bad = make_folder(tmp_path / "f", size=16)
    ds = SafeImageFolder(tmp_path / "f" / "train")
    cached = decode_folder(ds)
    assert cached is not None
    assert [s.path for s in cached.skipped] == [str(bad)]
    assert cached.dataset.images.shape == (len(ds) - 1, 3, 16, 16)
    with pytest.raises(CorruptImageError, match="broken.jpg"):
        decode_folder(SafeImageFolder(tmp_path / "f" / "train", strict=True))


def test_subsets_map_to_the_right_files(tmp_path):
    ds = SafeImageFolder(grey_folder(tmp_path / "f"))
    sub = Subset(Subset(ds, [1, 3, 5, 7, 9, 11]), [4, 0])  # files 9 and 1
    assert folder_source(sub) == (ds, [9, 1])
    cached = decode_folder(sub)
    assert cached.dataset.labels.tolist() == [ds.samples[9][1], ds.samples[1][1]]
    assert torch.equal(cached.dataset.images[0, 0], torch.from_numpy(np.array(Image.open(ds.samples[9][0]))))


def test_what_stays_on_the_per_image_path(tmp_path):
    root = grey_folder(tmp_path / "f")
    Image.fromarray(np.zeros((9, 9), np.uint8), "L").save(root / "a" / "odd.png")  # another size
    assert decode_folder(SafeImageFolder(root)) is None
    assert decode_folder(SafeImageFolder(grey_folder(tmp_path / "g")), max_bytes=100) is None  # over budget
    assert decode_folder(torch.utils.data.TensorDataset(torch.zeros(2))) is None  # not a folder


def test_parallel_decoding_matches(tmp_path, monkeypatch):
    ds = SafeImageFolder(grey_folder(tmp_path / "f"))
    one = decode_folder(ds, workers=1)
    monkeypatch.setattr(memory, "_POOL_MIN_IMAGES", 1)
    two = decode_folder(ds, workers=2)
    assert torch.equal(one.dataset.images, two.dataset.images)


def test_eval_tensors_equal_the_per_image_transform(tmp_path):
    tf = build_eval_transform(16, crop_pct=0.875)
    ds = SafeImageFolder(grey_folder(tmp_path / "f"), tf)
    cached = decode_folder(ds)
    x, y = eval_tensors(cached.dataset, chunk=5)
    ref = torch.stack([ds[i][0] for i in range(len(ds))])
    assert x.shape == ref.shape == (12, 3, 16, 16)
    torch.testing.assert_close(x, ref, atol=2e-2, rtol=0)  # PIL vs tensor resize: a rounding step apart
    torch.testing.assert_close(x, torch.stack([cached.dataset[i][0] for i in range(len(ds))]))
    assert y.tolist() == [t for _, t in ds.samples]
    batches = list(TensorEvalLoader(x, y, 5, cached.skipped))
    assert [len(b[1]) for b in batches] == [5, 5, 2]


def test_training_loaders_take_the_memory_path(tmp_path):
    from tests.train.helpers import make_folder

    bad = make_folder(tmp_path / "f", size=16)
    cfg = TrainConfig().replace(data=f"folder:{tmp_path / 'f'}", image_size=16, batch_size=4)
    from rexnet.data import build_datasets

    b = build_datasets(cfg.data, 16, augment=cfg.aug)
    train, skipped = in_memory(b.train, cfg)
    assert [s.path for s in skipped] == [str(bad)] and len(train) == len(b.train) - 1
    sampler = EpochSampler(len(train), 4, 0)
    tl = train_loader(train, 4, cfg, torch.device("cpu"), sampler)
    assert isinstance(tl, TensorBatchLoader)
    images, labels, _ = next(iter(tl))
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.float32
    vl = eval_loader(b.val, 8, cfg, torch.device("cpu"))
    assert isinstance(vl, TensorEvalLoader) and len(vl.labels) == len(b.val)
    # per-image augmentation: a DataLoader, decoding in workers under the measured plan
    per = cfg.replace(aug_backend="per-sample")
    dl = train_loader(b.train, 4, per, torch.device("cpu"), sampler)
    assert isinstance(dl, DataLoader) and dl.num_workers == loader_workers(per, b.train) >= 1
    assert loader_workers(per.replace(plan="fixed"), b.train) == 0
    assert loader_workers(per.replace(workers=3), b.train) == 3
