import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    # tests share 2 cores with other jobs
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
