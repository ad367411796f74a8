"""The core logs its decisions (logging.getLogger(__name__)); quiet by default, `kekong -v` shows them."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from kekong.io import save_image
from kekong.models import precision


def test_precision_logs_each_decision_with_its_reason(caplog, monkeypatch):
    monkeypatch.setattr(precision, "total_memory", lambda: 6 * 2**30)  # a sixth: 1 GiB
    monkeypatch.setenv("KEKONG_WEIGHTS", "auto")
    with caplog.at_level(logging.INFO, logger="kekong"):
        assert precision.storage_dtype(2 * 2**30, "the UNet") is torch.float16
        assert precision.storage_dtype(2**29, "the VAE") is None
    lines = [r.getMessage() for r in caplog.records if r.name == "kekong.models.precision"]
    assert "the UNet stored as fp16" in lines[0] and "2.00 GiB" in lines[0] and "1.00 GiB" in lines[0]
    assert "the VAE kept in fp32" in lines[1]


def test_the_core_prints_nothing_by_itself(capsys, monkeypatch):
    monkeypatch.setenv("KEKONG_WEIGHTS", "fp16")
    precision.storage_dtype(1)
    assert capsys.readouterr().err == ""


@pytest.fixture(scope="module")
def hed_setup(tmp_path_factory):
    from kekong.detect.learned.networks import ControlNetHED

    root = tmp_path_factory.mktemp("verbose")
    (root / "models" / "annotators").mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(ControlNetHED().state_dict(), root / "models" / "annotators" / "ControlNetHED.pth")
    save_image(np.full((64, 64, 3), 128, np.uint8), root / "grey.png")
    return root


@pytest.mark.parametrize("verbose", [False, True])
def test_dash_v_shows_where_the_weights_came_from(hed_setup, verbose):
    args = ["-v"] if verbose else []
    done = subprocess.run([sys.executable, "-m", "kekong.cli", *args, "detect", str(hed_setup / "grey.png"),
                           "-k", "softedge_hed", "-o", str(hed_setup / "edges.png")],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KEKONG_MODELS_DIR": str(hed_setup / "models")})
    assert done.returncode == 0, done.stderr
    line = "kekong.models.weights: softedge_hed: weights ControlNetHED.pth from the models folder"
    assert (line in done.stderr) is verbose, done.stderr
