"""Shared test configuration: per-test seeding, ``--runslow`` and the ``gpu`` marker."""

import numpy as np
import pytest
import torch


def pytest_addoption(parser):
    parser.addoption(
        "--runslow",
        action="store_true",
        default=False,
        help="run tests marked slow (statistical or long-running checks)",
    )


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow test: pass --runslow to run it")
    skip_gpu = pytest.mark.skip(reason="needs CUDA: torch.cuda.is_available() is False")
    run_slow = config.getoption("--runslow")
    has_cuda = torch.cuda.is_available()
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed_random_generators():
    """Seed numpy's and torch's global generators before every test."""
    np.random.seed(0)  # noqa: NPY002 - tests and libraries may still draw from the legacy RNG
    torch.manual_seed(0)
