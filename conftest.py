"""Root pytest configuration, shared by the test suite and the doctests in sk_mlcpc/."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Run tests with one intra-op thread, then restore the setting.

    The test networks are tiny: extra OpenMP threads only add synchronisation, and on a
    busy 2-core machine they slow a fit down by an order of magnitude.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
