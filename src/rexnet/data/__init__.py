"""Datasets and transforms: embedded digits and shapes, Fashion-MNIST/MNIST (IDX), CIFAR folders, image folders.

Example:
    >>> from rexnet.data import build_datasets
    >>> bundle = build_datasets("digits", image_size=32)
    >>> bundle.num_classes, bundle.class_names[:3]
    (10, ['0', '1', '2'])
"""

from .build import (
    DATASETS,
    EMBEDDED_DATASETS,
    EVAL_SPLITS,
    DatasetBundle,
    DatasetSource,
    build_datasets,
    data_help,
    data_preprocessing,
    resolve_data,
)
from .folder import CorruptImageError, SafeImageFolder, SkippedImage, collate_skipping, list_image_files
from .provenance import training_data_spec
from .transforms import AugmentConfig, build_eval_transform, build_train_transform

__all__ = [
    "DATASETS",
    "EMBEDDED_DATASETS",
    "EVAL_SPLITS",
    "AugmentConfig",
    "CorruptImageError",
    "DatasetBundle",
    "DatasetSource",
    "SafeImageFolder",
    "SkippedImage",
    "build_datasets",
    "data_preprocessing",
    "list_image_files",
    "training_data_spec",
    "data_help",
    "resolve_data",
    "build_eval_transform",
    "build_train_transform",
    "collate_skipping",
]
