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


# Lines third-party libraries printed on every openpose / seg_person / describe call (issue 23 item 4).
SPAM = ("TensorFlow Lite", "absl::InitializeLog", "inference_feedback_manager", "W0000", "GetPrototype",
        "UserWarning", "Token indices sequence length", "[transformers]")

_DETECTORS_SCRIPT = """
import os, sys
from skimage import data
from kekong.detect import run
from kekong.prompt.describe import describe_structure
image = data.astronaut()
for name in ("openpose_full", "seg_person", "openpose_full"):
    run(name, image)
print(describe_structure(data.chelsea()).tags)
os.write(2, b"kekong: our own line\\n")  # fd 2 still works afterwards and reaches the caller
"""


def test_detector_calls_print_nothing_but_kekongs_own_lines():
    """A fresh process (mediapipe's C++ logs once per process, from its graph threads, to fd 2)."""
    done = subprocess.run([sys.executable, "-c", _DETECTORS_SCRIPT], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k not in ("GLOG_minloglevel",
                                                                                "TF_CPP_MIN_LOG_LEVEL")})
    assert done.returncode == 0, done.stderr
    assert done.stderr == "kekong: our own line\n", done.stderr
    assert not any(word in done.stdout for word in SPAM), done.stdout


def test_an_over_long_prompt_gives_only_kekongs_error(tmp_path):
    prompt = "a red star on a light blue background " + "and more words " * 8
    done = subprocess.run([sys.executable, "-m", "kekong.cli", "generate", prompt, "-o", str(tmp_path / "x.png")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr  # one line
    assert done.stderr.startswith("error: the prompt is "), done.stderr
    assert not (tmp_path / "x.png").exists()


def test_captured_native_stderr_keeps_what_is_not_mediapipes_noise(capfd):
    from kekong.detect.mp_models import quiet_native_stderr

    with quiet_native_stderr():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"W0000 00:00:1796292993.704111   13900 inference_feedback_manager.cc:114] Feedback\n")
        os.write(2, b"E0000 00:00:1796292993.704111   13900 calculator.cc:9] a real error\n")
        os.write(2, b"someone else's line\n")
    assert capfd.readouterr().err == ("E0000 00:00:1796292993.704111   13900 calculator.cc:9] a real error\n"
                                      "someone else's line\n")
