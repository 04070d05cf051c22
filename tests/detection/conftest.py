import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    # tests share 2 cores with other jobs
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A valid (untrained) SSDLite detection checkpoint with 3 categories: its dict and its path."""
    from rexnet.detection.checkpoint import FORMAT, build_detector
    from rexnet.detection.config import DetectConfig

    cfg = DetectConfig.from_dict(dict(arch="ssdlite", backbone="rexnet_060", image_size=64))
    ck = dict(
        format=FORMAT,
        model=build_detector(cfg, 4).state_dict(),
        config=cfg.to_dict(),
        num_classes=4,
        class_names=["a", "b", "c"],
        cat_ids=[1, 2, 3],
        epoch=1,
    )
    path = tmp_path_factory.mktemp("ck") / "good.pt"
    torch.save(ck, path)
    return ck, path
