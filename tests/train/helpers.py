"""Helpers shared by the training tests: tiny configs and an image folder with a corrupt JPEG."""

from __future__ import annotations

import numpy as np
from PIL import Image

from rexnet.train import TrainConfig


def tiny_cfg(**kw) -> TrainConfig:
    """rexnet_060 on 64 digits at 32 px: a second per epoch on one core."""
    base = dict(
        model="rexnet_060",
        data="digits",
        image_size=32,
        train_limit=64,
        val_limit=48,
        batch_size=16,
        epochs=2,
        threads=1,
        progress=False,
        tensorboard=False,
        lr=0.05,
        warmup_epochs=0.5,
    )
    base.update(kw)
    return TrainConfig().replace(**base)


def make_folder(root, classes=("cat", "dog"), per_class=6, size=20, corrupt=True):
    """An ImageNet-layout folder of random JPEGs; one corrupt JPEG in train/dog."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(per_class if split == "train" else 2):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.jpg")
    bad = root / "train" / "dog" / "broken.jpg"
    if corrupt:
        good = (root / "train" / "dog" / "0.jpg").read_bytes()
        bad.write_bytes(good[: len(good) // 3])  # a truncated JPEG
    return bad
