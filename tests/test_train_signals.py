"""Stopping a training run (issue 23 item 9): SIGTERM and Ctrl-C save a checkpoint the same command
resumes from, at once even in the middle of a validation, which never freezes the progress bar."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from kekong.train.runner import RunSettings, Stopped, run_training
from tests.tiny_models import build_tiny_base


def toy() -> tuple[torch.nn.Module, object]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)

    def loss_fn(step: int, micro: int) -> torch.Tensor:
        x = torch.Generator().manual_seed(step)
        return (model(torch.randn(8, 4, generator=x)) - 1).pow(2).mean()

    return model, loss_fn


def signal_later(signum: int, after: float) -> threading.Timer:
    timer = threading.Timer(after, os.kill, (os.getpid(), signum))
    timer.start()
    return timer


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_a_long_validation_stops_at_once_with_the_step_saved(tmp_path, signum, code):
    model, loss_fn = toy()
    entered = threading.Event()

    def minutes_of_sampling(step: int) -> dict[str, float]:
        entered.set()
        signal_later(signum, 0.5)
        time.sleep(120)  # as a validation on a real model can take
        return {"score": 1.0}

    settings = RunSettings(tmp_path, steps=50, checkpoint_every=100, validate_every=3, warmup=1, progress=False)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)  # (another library may have set them)
    began = time.monotonic()
    with pytest.raises(Stopped) as caught:
        run_training(settings, "toy", {"model": model}, loss_fn, minutes_of_sampling)
    assert entered.is_set() and time.monotonic() - began < 10  # not 120 s
    assert caught.value.exit_code == code
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3  # the step before the validation is complete and kept
    assert str(caught.value).startswith("toy: stopped at step 3; checkpoint saved at ")
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3] and "score" not in logged[-1]  # its loss, no score
    assert torch.equal(state["modules"]["model"]["weight"], model.state_dict()["weight"])
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # handlers given back


def test_a_signal_during_a_step_finishes_the_step_then_stops(tmp_path):
    model, loss_fn = toy()

    def slow(step: int, micro: int) -> torch.Tensor:
        if step == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-step
            time.sleep(0.2)
        return loss_fn(step, micro)

    with pytest.raises(Stopped) as caught:
        run_training(RunSettings(tmp_path, steps=50, checkpoint_every=100, warmup=1, progress=False), "toy",
                     {"model": model}, slow)
    assert caught.value.exit_code == 143
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 5  # step 5 (index 4) done
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


def test_a_resumed_run_matches_an_unbroken_one(tmp_path):
    model, loss_fn = toy()
    run_training(RunSettings(tmp_path / "whole", steps=12, warmup=1, progress=False), "toy", {"model": model},
                 loss_fn)
    whole = model.state_dict()["weight"].clone()
    model, loss_fn = toy()

    def stop_at_6(step: int, micro: int) -> torch.Tensor:
        if step == 6:
            os.kill(os.getpid(), signal.SIGTERM)
        return loss_fn(step, micro)

    with pytest.raises(Stopped):
        run_training(RunSettings(tmp_path / "cut", steps=12, warmup=1, progress=False), "toy", {"model": model},
                     stop_at_6)
    model, loss_fn = toy()  # a fresh process: new weights, resumed from the checkpoint
    run_training(RunSettings(tmp_path / "cut", steps=12, warmup=1, progress=False), "toy", {"model": model},
                 loss_fn)
    assert torch.allclose(model.state_dict()["weight"], whole, atol=1e-6)


def test_the_progress_bar_ticks_during_a_validation(tmp_path, capsys):
    model, loss_fn = toy()

    def slow_validation(step: int) -> dict[str, float]:
        time.sleep(2.6)
        return {}

    settings = RunSettings(tmp_path, steps=2, validate_every=2, warmup=1, progress=True)
    run_training(settings, "toy", {"model": model}, loss_fn, slow_validation)
    err = capsys.readouterr().err
    assert "validating at step 2: 2 s" in err  # refreshed while it samples, not frozen
    record = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert 2.5 <= record["validation_s"] < 10


def _stop_after_checkpoint(command: list[str], run: Path, past: int) -> tuple[int, str]:
    """Start a training run, send SIGTERM once its log passes step `past` and a checkpoint exists;
    return the step it says it stopped at (checked against the checkpoint) and its stderr."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log, deadline = run / "log.jsonl", time.time() + 300

    def last_step() -> int:
        lines = log.read_text().splitlines() if log.is_file() else []
        return json.loads(lines[-1])["step"] if lines else 0

    while not ((run / "checkpoint.pt").is_file() and last_step() > past) and time.time() < deadline:
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.3)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert time.monotonic() - sent < 60  # a validation in progress does not hold it
    assert process.returncode == 143, err
    lines = [line for line in err.splitlines() if "stopped at step" in line]
    assert len(lines) == 1 and "Traceback" not in err and "error" not in err, err
    step = int(lines[0].split("stopped at step ")[1].split(";")[0])
    assert lines[0] == (f"controlnet: stopped at step {step}; checkpoint saved at {run / 'checkpoint.pt'} "
                        "(run the same command again to resume)")
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == step
    return step, err


def test_sigterm_stops_a_real_training_run_which_then_resumes(tmp_path):
    build_tiny_base(tmp_path / "base")
    run = tmp_path / "run"
    command = [sys.executable, "-m", "kekong.cli", "train", "controlnet", "--base", str(tmp_path / "base"),
               "--out", str(run), "--data", "shapes", "--limit", "24", "--batch-size", "2", "--steps", "400",
               "--checkpoint-every", "2", "--validate-every", "3"]
    first, _ = _stop_after_checkpoint(command, run, 0)
    logged = len((run / "log.jsonl").read_text().splitlines())
    assert first >= 1
    # The same command again goes on from the checkpoint: its first step is the one after it.
    second, _ = _stop_after_checkpoint(command, run, first)
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert max(steps[:logged]) <= first and steps[logged:] == list(range(first + 1, steps[-1] + 1))
    assert first < steps[-1] <= second
