"""Shared fixtures: real photos that scikit-image ships, decoded once; a private config and
data directory (C2PA keys, watermark register) so tests never touch the user's."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
from skimage import data

_HOME = tempfile.mkdtemp(prefix="kekong-test-home-")
os.environ["KEKONG_CONFIG_DIR"] = os.path.join(_HOME, "config")  # subprocesses inherit these
os.environ["KEKONG_DATA_DIR"] = os.path.join(_HOME, "data")
os.environ["KEKONG_RUNTIME_DIR"] = os.path.join(_HOME, "run")  # servers started by tests announce themselves here
os.environ["KEKONG_NO_SERVER"] = "1"  # `kekong generate` in tests runs here (tests/test_cli_via_server.py opts in)


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
