"""Training: the paper's recipe as a config preset, one plain loop, DDP, exact resume, evaluation.

Example:
    >>> from rexnet.data import build_datasets
    >>> from rexnet.train import TrainConfig, fit
    >>> import rexnet
    >>> b = build_datasets("digits", 32, train_limit=64, val_limit=32)
    >>> cfg = TrainConfig(epochs=1, batch_size=32, progress=False)
    >>> res = fit(rexnet.create_model("rexnet_060", num_classes=10), b.train, b.val, cfg)
    >>> 0 <= res["val_top1"] <= 100
    True
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .config import PRESETS, ConfigError, TrainConfig, load_config_file
from .evaluate import evaluate, predict
from .finetune import finetune_defaults
from .inference import evaluate_checkpoint, load_trained_model, predict_files
from .loop import NonFiniteLossError, fit
from .run import RunResult, finetune, resume_config, train

__all__ = [
    "PRESETS",
    "ConfigError",
    "NonFiniteLossError",
    "RunResult",
    "TrainConfig",
    "evaluate",
    "evaluate_checkpoint",
    "finetune",
    "finetune_defaults",
    "fit",
    "load_checkpoint",
    "load_config_file",
    "load_trained_model",
    "predict",
    "predict_files",
    "resume_config",
    "save_checkpoint",
    "train",
]
