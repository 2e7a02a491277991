"""Fixtures of the agent tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Small torch ops are slower and erratic with more threads on these 2-core machines."""
    torch.set_num_threads(1)
