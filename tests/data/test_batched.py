"""Batched in-memory augmentation: geometry equal to torchvision's crop, per-image keyed draws, loaders."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from rexnet.data import AugmentConfig, build_datasets
from rexnet.data.batched import BatchAugment, CachedEvalLoader, TensorBatchLoader, image_keys, tensor_source

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _aug(**kw) -> AugmentConfig:
    base = dict(scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.0, randaug_n=0, reprob=0.0)
    return AugmentConfig(**{**base, **kw})


def _norm(x: torch.Tensor) -> torch.Tensor:
    m, s = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (x.float().expand(-1, 3, -1, -1) / 255 - m) / s


def test_full_frame_crop_is_the_identity():
    x = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    t = BatchAugment(28, _aug(scale=(1.0, 1.0), ratio=(1.0, 1.0)), MEAN, STD, "bilinear")
    torch.testing.assert_close(t(x, image_keys(0, 0, torch.arange(5))), _norm(x), atol=1e-4, rtol=0)


def test_flip_mirrors_the_image():
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    t = BatchAugment(16, _aug(scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=1.0), MEAN, STD, "bilinear")
    torch.testing.assert_close(t(x, image_keys(0, 0, torch.arange(4))), _norm(x.flip(-1)), atol=1e-4, rtol=0)


def test_crop_matches_torchvision_resized_crop():
    """The sampled box, resampled by grid_sample, equals torchvision's resized_crop of the same box.

    Away from the crop's edge: there grid_sample reads the real pixels beyond the box where torchvision,
    which cuts the box out first, repeats the box's edge."""
    x = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    t = BatchAugment(32, _aug(), MEAN, STD, "bilinear")
    keys = image_keys(3, 1, torch.arange(6))
    out = t(x, keys)
    for k, (top, left, h, w) in enumerate(t.crop_boxes(keys, 28, 28).long().tolist()):
        ref = TF.resized_crop(x[k].float(), top, left, h, w, [32, 32], antialias=False)
        inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))
        torch.testing.assert_close(out[k : k + 1][inner], _norm(ref[None].clamp(0, 255))[inner], atol=2e-3, rtol=0)


def test_crop_boxes_follow_the_recipe():
    t = BatchAugment(32, _aug(scale=(0.35, 1.0)), MEAN, STD)
    boxes = t.crop_boxes(image_keys(0, 0, torch.arange(2000)), 28, 28)
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 28).all() and (left + w <= 28).all()
    area = h * w / (28 * 28)
    assert area.min() >= 0.3 and area.max() <= 1.0  # (rounding to whole pixels widens 0.35 a little)
    assert 0.6 < area.mean() < 0.72  # uniform in [0.35, 1]: mean 0.675
    assert len(set(map(tuple, boxes.tolist()))) > 500  # varied


def test_draws_depend_only_on_seed_epoch_and_index():
    x = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    t = BatchAugment(32, _aug(hflip=0.5, reprob=0.5), MEAN, STD)
    idx = torch.arange(8)
    whole = t(x, image_keys(7, 2, idx))
    halves = torch.cat([t(x[:4], image_keys(7, 2, idx[:4])), t(x[4:], image_keys(7, 2, idx[4:]))])
    assert torch.equal(whole, halves)  # batch layout does not matter
    assert not torch.equal(whole, t(x, image_keys(7, 3, idx)))  # another epoch draws anew
    assert not torch.equal(whole, t(x, image_keys(8, 2, idx)))  # another seed too


def test_random_erasing_rate_and_noise():
    x = torch.full((400, 1, 16, 16), 128, dtype=torch.uint8)
    t = BatchAugment(16, _aug(scale=(1.0, 1.0), ratio=(1.0, 1.0), reprob=0.25), MEAN, STD, "bilinear")
    out = t(x, image_keys(0, 0, torch.arange(400)))
    erased = (out - _norm(x)).abs().amax((1, 2, 3)) > 1e-3
    assert 0.18 < erased.float().mean() < 0.32
    assert BatchAugment(16, _aug(reprob=0.0), MEAN, STD)(x, image_keys(0, 0, torch.arange(400))).std() < 1e-5 + (
        out.std()
    )  # sanity: erasing adds noise the plain path has not


def test_randaugment_has_no_batched_form():
    assert not BatchAugment.supports(AugmentConfig(randaug_n=2))
    with pytest.raises(ValueError, match="RandAugment"):
        BatchAugment(32, AugmentConfig(randaug_n=2), MEAN, STD)


def test_loader_yields_every_index_once_and_cached_eval_is_exact():
    b = build_datasets("digits", 32, augment=_aug(), train_limit=100, val_limit=40)
    base, index = tensor_source(b.train)
    assert len(index) == 100 and base.batch_transform is not None
    sampler = [(0, i) for i in range(100)]
    loader = TensorBatchLoader(base.images[index], base.labels[index], sampler, 32, base.batch_transform, 0)
    batches = list(loader)
    assert [len(y) for _, y, _ in batches] == [32, 32, 32, 4]
    assert torch.equal(torch.cat([y for _, y, _ in batches]), base.labels[index])
    ev = list(CachedEvalLoader(b.val, 16))
    ref = torch.stack([b.val[i][0] for i in range(len(b.val))])
    assert torch.equal(torch.cat([x for x, _, _ in ev]), ref)


def test_tensor_source_sees_through_subsets():
    b = build_datasets("shapes", 32, train_limit=50)
    base, index = tensor_source(b.train)
    assert torch.equal(base.images[index[7]], b.train.dataset.images[b.train.indices[7]])
    assert tensor_source(torch.utils.data.TensorDataset(torch.zeros(2))) is None
    assert F is not None
