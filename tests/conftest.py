"""Shared fixtures: real photos that scikit-image ships, decoded once."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return data.astronaut()  # 512×512 RGB, one person facing the camera


@pytest.fixture(scope="session")
def camera() -> np.ndarray:
    return np.stack([data.camera()] * 3, axis=2)  # 512×512 greyscale photographer


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    return data.coffee()  # 400×600 RGB


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    return data.chelsea()  # 300×451 RGB cat
