"""Shared pytest fixtures."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    """The test machine is shared: keep torch on one thread."""
    torch.set_num_threads(1)
    yield
