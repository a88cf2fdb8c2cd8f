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
