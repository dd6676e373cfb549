"""Fixtures for the NAS-core tests (plain Python + torch, no database)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These tests push tiny tensors: a second intra-op thread only adds contention
    (on a busy 2-core machine a DARTS step took 10x longer with 2 threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
