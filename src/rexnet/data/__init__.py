"""Datasets and transforms: embedded digits and shapes, Fashion-MNIST/MNIST (IDX), CIFAR folders, image folders.

Example:
    >>> from rexnet.data import build_datasets
    >>> bundle = build_datasets("digits", image_size=32)
    >>> bundle.num_classes, bundle.class_names[:3]
    (10, ['0', '1', '2'])
"""

from .build import DATASETS, EMBEDDED_DATASETS, DatasetBundle, DatasetSource, build_datasets, data_help, resolve_data
from .folder import CorruptImageError, SafeImageFolder, SkippedImage, collate_skipping
from .transforms import AugmentConfig, build_eval_transform, build_train_transform

__all__ = [
    "DATASETS",
    "EMBEDDED_DATASETS",
    "AugmentConfig",
    "CorruptImageError",
    "DatasetBundle",
    "DatasetSource",
    "SafeImageFolder",
    "SkippedImage",
    "build_datasets",
    "data_help",
    "resolve_data",
    "build_eval_transform",
    "build_train_transform",
    "collate_skipping",
]
