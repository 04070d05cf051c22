"""Shared helpers for the deploy tests: models with random weights *and* random BN statistics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import rexnet


def randomize(model: nn.Module, seed: int = 0, classifier_std: float = 0.05) -> nn.Module:
    """Random BN statistics/affine terms (so folding is really tested) and a classifier whose
    logits differ between inputs (so top-1 agreement means something)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) * 0.6 - 0.3)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0, classifier_std, generator=g)
    return model.eval()


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One intra-op thread: on a shared 2-core machine busy-waiting OpenMP workers make every
    op wait for a descheduled peer (10x slower tests); one thread has no barrier to wait at."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def rexnet_small() -> nn.Module:
    """rexnet_060 with random weights and BN statistics, eval mode."""
    torch.manual_seed(0)
    return randomize(rexnet.create_model("rexnet_060"))


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training checkpoint (random weights and BN statistics) for rexnet_060 on digits at 32 px."""
    from rexnet.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = randomize(rexnet.create_model("rexnet_060", num_classes=10), classifier_std=0.2)
    path = tmp_path_factory.mktemp("ck") / "best.pt"
    save_checkpoint(
        dict(
            model=model.state_dict(),
            optimizer={},
            scheduler={},
            epoch=1,
            step_in_epoch=0,
            history=[],
            config={"image_size": 32},
            model_name="rexnet_060",
            num_classes=10,
            class_names=[str(i) for i in range(10)],
        ),
        path,
    )
    return path
