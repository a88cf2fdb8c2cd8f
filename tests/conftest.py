"""Shared fixtures. The GPU marker is skipped unless cupy sees a real device."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    from simulate.backend import gpu_available

    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs cupy and a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


class _Recorder:
    """An array (numpy, Zarr) read by slicing that records the largest block read."""

    def __init__(self, a):
        self.a, self.shape, self.largest = a, a.shape, 0

    def __getitem__(self, key):
        block = self.a[key]
        self.largest = max(self.largest, block.nbytes)
        return block


@pytest.fixture
def recorder():
    """Wraps an array so a test can check that a reader never took the whole of it."""
    return _Recorder
