"""The one place the search touches training: a thin adapter over :func:`rexnet.train.fit`.

No other search module imports :mod:`rexnet.train` (the architecture test checks it): the options
of a candidate's training are checked by :func:`train_config`, and its data is built by
:func:`load_data`.

A *trainer* is any callable ``trainer(plan, data, epochs=..., seed=..., on_epoch_end=...)``
returning the validation accuracy, or a mapping with ``"accuracy"`` and further per-seed
statistics (the default adds the final features' rank statistics); the search calls it once per
seed. :func:`fit_trainer` is the default; tests and dry runs may pass their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..plan import NetworkPlan

__all__ = ["Trainer", "EpochCallback", "final_feature_stats", "fit_trainer", "load_data", "train_config"]

_log = logging.getLogger(__name__)

#: ``on_epoch_end(epoch, val_accuracy)``; may raise (``optuna.TrialPruned``) to stop the run.
EpochCallback = Callable[[int, float], None]


class Trainer(Protocol):
    def __call__(
        self, plan: NetworkPlan, data: Any, *, epochs: int, seed: int, on_epoch_end: EpochCallback
    ) -> float | Mapping[str, float]: ...


def train_config(options: Mapping[str, Any] | None = None, **fields: Any) -> Any:
    """The :class:`rexnet.train.TrainConfig` of each candidate: the training defaults with ``options``.

    Raises:
        ConfigError: An unknown key or a bad value (from ``TrainConfig``).
    """
    from ..train.config import TrainConfig

    return TrainConfig().replace(**{**dict(options or {}), **fields})


def load_data(
    data: str, image_size: int, max_samples: int | None = None, val_samples: int | None = None, augment: Any = None
) -> Any:
    """The proxy dataset: :func:`rexnet.data.build_datasets`, optionally cut to ``max_samples``.

    Args:
        data: ``"digits"`` (the embedded default), ``"fashion-mnist"`` or a folder (CIFAR-10/100 or
            ImageFolder).
        image_size: Input size.
        max_samples: Keep at most this many training samples, for quick runs; ``None`` keeps all.
        val_samples: Keep at most this many validation samples; ``None`` keeps a quarter of
            ``max_samples`` (at least 32) when that is given, else all. The search ranks
            candidates on this split, so its size sets the ranking's noise floor.
        augment: Training augmentation (:class:`rexnet.data.AugmentConfig`); ``None`` takes the
            training defaults' (:class:`rexnet.train.TrainConfig`), as ``rexnet train`` would.
    """
    from ..data import build_datasets

    limits: dict[str, int] = {}
    if max_samples:
        limits["train_limit"] = max_samples
    if val_samples:
        limits["val_limit"] = val_samples
    elif max_samples:
        limits["val_limit"] = max(32, max_samples // 4)
    if augment is None:
        augment = train_config().aug
    return build_datasets(data=data, image_size=image_size, augment=augment, **limits)


def _metric(metrics: Mapping[str, Any]) -> float:
    for key in ("val_top1", "val_acc", "top1"):
        if key in metrics and metrics[key] is not None:
            return float(metrics[key])
    raise KeyError(f"no validation accuracy among {sorted(metrics)}")


def fit_trainer(
    options: Mapping[str, Any] | None = None, threads: int | None = None, feature_images: int = 512
) -> Trainer:
    """The default trainer: builds :class:`rexnet.model.RexNet` from the plan and calls ``fit``.

    Args:
        options: Extra :class:`rexnet.train.TrainConfig` fields (e.g. ``batch_size``, ``lr``);
            unknown names raise ``RexnetError`` (from ``TrainConfig``).
        threads: ``torch.set_num_threads`` for each trial (1 per worker when several share a machine).
        feature_images: After training, the rank statistics of the final features of this many
            validation images are returned with the accuracy (the paper's nuclear norm against
            accuracy); 0 leaves them out. When the data has a ``test`` split (Fashion-MNIST), its
            top-1 is returned as ``test_accuracy``, for reporting only.
    """
    opts = dict(options or {})

    def train(plan: NetworkPlan, data: Any, *, epochs: int, seed: int, on_epoch_end: EpochCallback) -> float:
        import torch

        from ..model import RexNet
        from ..train import fit

        if threads:
            torch.set_num_threads(threads)
        quiet = {"progress": False, "tensorboard": False, "threads": threads}
        cfg = train_config(
            {k: v for k, v in quiet.items() if v is not None}, **{**opts, "epochs": epochs, "seed": seed}
        )
        torch.manual_seed(seed)
        model = RexNet(plan, num_classes=data.num_classes)

        def hook(epoch: int, metrics: Mapping[str, Any]) -> None:
            on_epoch_end(epoch, _metric(metrics))

        result = fit(model, data.train, data.val, cfg, out_dir=None, on_epoch_end=hook)
        if result.get("status") == "interrupted":  # fit swallowed Ctrl-C: stop the worker, keep the slot
            raise KeyboardInterrupt
        out: dict[str, float] = {"accuracy": _metric(result)}
        test = getattr(data, "test", None)
        if test is not None:  # recorded for reporting only: the search ranks on validation accuracy
            from ..train.evaluate import evaluate

            out["test_accuracy"] = float(evaluate(model, test, num_classes=data.num_classes, device=cfg.device)["top1"])
        if feature_images:
            out.update(final_feature_stats(model, data.val, feature_images))
        return out if len(out) > 1 else out["accuracy"]

    return train


def final_feature_stats(model: Any, dataset: Any, images: int) -> dict[str, float]:
    """:func:`rexnet.rank.estimators.feature_stats` of the pooled final features (eval mode) of
    the first ``images`` samples of ``dataset``: the paper's nuclear norm of a trained candidate."""
    import torch

    from ..rank.estimators import feature_stats

    n = min(images, len(dataset))
    x = torch.stack([dataset[i][0] for i in range(n)])
    model.eval()
    with torch.no_grad():
        f = model.forward_head(model.forward_features(x), pre_logits=True)
    return feature_stats(f.T)
