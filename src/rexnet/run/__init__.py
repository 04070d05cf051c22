"""What every long job shares: the run folder and its kind, the lock, config + resume rules, records,
checkpoints, progress, stop signals and finite checks.

Classification training (:mod:`rexnet.train`), detection training, the rank study and the search all
run on it. It depends only on rexnet's base helpers (and torch).

Example:
    >>> import tempfile
    >>> with Run(tempfile.mkdtemp(), "train").open() as run:
    ...     run.write_config({"epochs": 1})
"""

from .finite import check_finite, is_finite, nonfinite_tensors
from .folder import KINDS, MARKER, Run, folder_kind
from .lock import LOCK_NAME, RunLock
from .loop import Steps, failure_status, run_epochs
from .progress import Progress, StopFlag
from .resume import read_config_json, resume_changes, saved_config

__all__ = [
    "KINDS",
    "LOCK_NAME",
    "MARKER",
    "Progress",
    "Run",
    "RunLock",
    "StopFlag",
    "Steps",
    "check_finite",
    "failure_status",
    "folder_kind",
    "is_finite",
    "nonfinite_tensors",
    "read_config_json",
    "resume_changes",
    "run_epochs",
    "saved_config",
]
