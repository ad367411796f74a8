"""Training: the shapes data, the metrics, a short run whose loss falls, and kill-and-resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from kekong.colours import delta_e, lab
from kekong.train.bench import score
from kekong.train.controlnet import filled_region, iou
from kekong.train.data import load_fill
from kekong.train.runner import RunSettings, Stopped, run_training
from kekong.train.shapes import COLOURS, MIN_DELTA_E, article, colour_of, random_sample, write_dataset
from tests.tiny_models import build_tiny_base


def test_shapes_samples_are_large_far_apart_in_colour_and_described():
    rng = np.random.default_rng(0)
    for _ in range(50):
        sample = random_sample(rng, 64)
        for shape in sample.shapes:
            assert shape.radius >= 64 / 4.6
            assert f"{article(shape.colour)} {shape.colour} {shape.kind}" in sample.prompt
            assert delta_e(lab(colour_of(shape.colour)), lab(colour_of(sample.background))) >= MIN_DELTA_E
        assert sample.prompt.endswith(f"on {article(sample.background)} {sample.background} background")
        assert sample.filled.sum() == sum(m.sum() for m in sample.masks)  # masks partition the shapes
        assert set(np.unique(sample.outline)) == {0, 255}


def test_colour_names_of_one_colour_are_one_class():
    assert colour_of("aqua") == colour_of("cyan") and colour_of("fuchsia") == colour_of("magenta")
    assert len({rgb for rgb, _ in COLOURS.values()}) == len(COLOURS)


def test_dataset_is_written_in_the_fill_layout_and_reads_back(tmp_path):
    write_dataset(tmp_path, 6, 64, seed=3)
    lines = [json.loads(line) for line in (tmp_path / "prompt.json").read_text().splitlines()]
    assert len(lines) == 6 and set(lines[0]) == {"source", "target", "prompt", "scribble"}
    data = load_fill(tmp_path, 64)
    assert data.targets.shape == (6, 64, 64, 3) and len(data.conditions) == 2


def test_outline_fill_and_iou():
    sample = random_sample(np.random.default_rng(1), 64)
    region = filled_region(sample.outline)
    assert iou(region, sample.filled) > 0.85
    assert iou(np.zeros_like(region), region) == 0.0


def test_bench_score_is_perfect_on_the_target_and_zero_on_a_blank_image():
    sample = random_sample(np.random.default_rng(2), 64)
    perfect = score(sample.target, sample)
    assert perfect["iou"] > 0.9 and perfect["shape_colour"] == 1.0 and perfect["background_colour"] == 1.0
    blank = np.empty_like(sample.target)
    blank[:] = colour_of(sample.background)
    empty = score(blank, sample)
    assert empty["iou"] == 0.0 and empty["background_colour"] == 1.0


def test_a_short_run_lowers_the_loss_and_resumes_from_its_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    x = torch.randn(256, 8)
    y = x[:, :1] * 2 - x[:, 1:2]

    def loss_fn(step, micro):
        rows = torch.from_numpy(np.random.default_rng([step, micro]).integers(256, size=32))
        return torch.nn.functional.mse_loss(model(x[rows]), y[rows])

    settings = RunSettings(tmp_path, steps=60, lr=1e-2, checkpoint_every=20, warmup=1, progress=False)
    run_training(settings, "toy", {"model": model}, loss_fn)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:10])

    def crash_at_70(step, micro):
        if step == 70:
            raise RuntimeError("power cut")
        return loss_fn(step, micro)

    with pytest.raises(RuntimeError):
        run_training(RunSettings(tmp_path, steps=90, lr=1e-2, checkpoint_every=20, progress=False), "toy",
                     {"model": model}, crash_at_70)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 60  # last one written
    run_training(RunSettings(tmp_path, steps=90, lr=1e-2, checkpoint_every=20, progress=False), "toy",
                 {"model": model}, loss_fn)
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps[-20:] == list(range(71, 91))  # resumed at 61 after the crash; 61..70 logged twice


def test_controlnet_training_killed_midway_resumes_from_the_checkpoint(tmp_path):
    build_tiny_base(tmp_path / "base")
    command = [sys.executable, "-m", "kekong.cli", "train", "controlnet", "--base", str(tmp_path / "base"),
               "--out", str(tmp_path / "run"), "--data", "shapes", "--limit", "24", "--steps", "400",
               "--batch-size", "2", "--checkpoint-every", "3", "--validate-every", "1000"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    deadline = time.time() + 240
    while not checkpoint.is_file() and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = torch.load(checkpoint, weights_only=True)["step"]
    assert saved >= 3
    resume = subprocess.run([*command[:-8], "--steps", str(saved + 2), *command[-6:]], capture_output=True, text=True,
                            timeout=300)
    assert resume.returncode == 0, resume.stderr
    steps = [json.loads(line)["step"] for line in (Path(tmp_path) / "run" / "log.jsonl").read_text().splitlines()]
    assert steps[-2:] == [saved + 1, saved + 2]
    assert (tmp_path / "run" / "controlnet" / "config.json").is_file()


def test_cubic_timesteps_favour_high_noise_and_min_snr_weights_damp_low_noise():
    from kekong.train.diffusion import min_snr_weights, noise_scheduler, sample_timesteps

    generator = torch.Generator().manual_seed(0)
    uniform = sample_timesteps(4000, 1000, generator, "uniform")
    cubic = sample_timesteps(4000, 1000, generator, "cubic")
    assert int(cubic.min()) >= 0 and int(cubic.max()) <= 999
    assert (cubic >= 500).float().mean() > 0.75 > 0.55 > (uniform >= 500).float().mean()  # P(u³ ≤ ½) = 0.79
    with pytest.raises(ValueError, match="cubic"):
        sample_timesteps(4, 1000, generator, "quadratic")
    weights = min_snr_weights(noise_scheduler(), torch.tensor([0, 100, 500, 999]), gamma=5.0)
    assert weights[0] < 0.01 and weights[1] < 1.0  # nearly clean samples: SNR ≫ 5, damped
    assert torch.allclose(weights[2:], torch.ones(2))  # noisy samples (SNR ≤ 5) keep full weight


def test_cubic_then_uniform_switches_to_uniform_for_the_last_third_of_a_run():
    from kekong.train.diffusion import bias_at

    assert [bias_at("cubic-then-uniform", step, 300) for step in (0, 199, 200, 299)] == \
        ["cubic", "cubic", "uniform", "uniform"]
    assert bias_at("cubic", 299, 300) == "cubic" and bias_at("uniform", 0, 300) == "uniform"
    with pytest.raises(ValueError, match="cubic-then-uniform"):
        bias_at("linear", 0, 300)


def test_two_random_samples_overlap_little_so_chance_iou_stays_under_the_goal():
    rng = np.random.default_rng(7)
    pairs = [(random_sample(rng, 64).filled, random_sample(rng, 64).filled) for _ in range(150)]
    assert np.mean([iou(a, b) for a, b in pairs]) < 0.3  # the benchmark's goal for a base without ControlNet


def test_learning_rate_warms_up_then_decays_to_zero_at_the_last_step():
    from kekong.train.runner import lr_factor

    settings = RunSettings(Path("unused"), steps=1000, warmup=100)
    assert lr_factor(0, settings) < 0.02 < lr_factor(50, settings) < lr_factor(99, settings)
    assert abs(lr_factor(500, settings) - 0.5) < 1e-9 and lr_factor(1000, settings) == 0.0


def test_samples_without_control_train_as_if_there_were_no_controlnet():
    from diffusers import ControlNetModel

    from kekong.train.diffusion import denoising_loss, noise_scheduler
    from tests.tiny_models import tiny_unet

    unet = tiny_unet()
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 8, 8))
    torch.manual_seed(1)
    for zero_conv in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
        torch.nn.init.normal_(zero_conv.weight, std=0.5)  # as after training: the residuals are not zero
    latents, embeds = torch.randn(2, 4, 16, 16), torch.randn(2, 77, 32)
    cond = torch.rand(2, 3, 128, 128)

    @torch.no_grad()
    def loss(**control):
        return float(denoising_loss(unet, latents, embeds, torch.Generator().manual_seed(0), noise_scheduler(),
                                    **control))

    plain = loss()
    assert loss(controlnet=controlnet, cond=cond) != pytest.approx(plain)
    assert loss(controlnet=controlnet, cond=cond, keep_control=torch.tensor([0, 0])) == pytest.approx(plain)


def test_a_trained_controlnet_goes_on_with_the_decoder_unlocked_and_the_tuned_base_is_saved(tmp_path):
    from kekong.models.load import load_base, load_controlnet
    from tests.test_cli import kekong as run_kekong

    build_tiny_base(tmp_path / "base")
    common = ["--data", "shapes", "--limit", "24", "--steps", "2", "--batch-size", "2", "--lr", "1e-2",
              "--validate-every", "1000"]
    locked = run_kekong("train", "controlnet", "--base", str(tmp_path / "base"), "--out", str(tmp_path / "locked"),
                        *common)
    assert locked.returncode == 0, locked.stderr
    done = run_kekong("train", "controlnet", "--base", str(tmp_path / "base"), "--out", str(tmp_path / "tuned"),
                      "--controlnet", str(tmp_path / "locked" / "controlnet"), "--unlock-decoder",
                      "--unlock-after", "0", "--control-dropout", "0.25", *common)
    assert done.returncode == 0, done.stderr
    assert "use this base with the ControlNet" in done.stdout
    original = load_base(str(tmp_path / "base")).unet.state_dict()
    tuned = load_base(str(tmp_path / "tuned" / "base")).unet.state_dict()
    changed = {key for key in original if not torch.equal(original[key], tuned[key])}
    assert changed and all(key.startswith(("up_blocks.", "conv_norm_out.", "conv_out.")) for key in changed)
    before = load_controlnet(str(tmp_path / "locked" / "controlnet"))[0].state_dict()
    after = load_controlnet(str(tmp_path / "tuned" / "controlnet"))[0].state_dict()
    assert any(not torch.equal(before[key], after[key]) for key in before)


def test_training_goes_on_from_the_controlnet_it_is_given(tmp_path):
    from kekong.models.load import load_base
    from kekong.train.controlnet import build_controlnet, train_controlnet
    from kekong.train.data import shapes_set

    base = load_base(str(build_tiny_base(tmp_path / "base")))
    start = build_controlnet(base)
    torch.nn.init.normal_(start.controlnet_mid_block.weight)  # unlike a new copy, whose zero convolutions are 0
    mid = start.controlnet_mid_block.weight.detach().clone()
    settings = RunSettings(tmp_path / "run", steps=1, batch_size=2, lr=1e-9, warmup=1, progress=False)
    trained = train_controlnet(base, shapes_set(12, 64, seed=0), settings, held_out=0, controlnet=start)
    assert trained is start and torch.allclose(trained.controlnet_mid_block.weight, mid, atol=1e-6)


def test_unlocking_options_that_cannot_work_are_refused_before_loading(tmp_path):
    from tests.test_cli import kekong as run_kekong

    single = tmp_path / "model.safetensors"
    single.write_bytes(b"not even read")
    done = run_kekong("train", "controlnet", "--base", str(single), "--out", str(tmp_path / "run"), "--unlock-decoder")
    assert done.returncode != 0 and "single file" in done.stderr
    done = run_kekong("train", "controlnet", "--base", str(single), "--out", str(tmp_path / "run"),
                      "--control-dropout", "0.2")
    assert done.returncode != 0 and "--unlock-decoder" in done.stderr


def test_ctrl_c_saves_and_says_where(tmp_path):
    model = torch.nn.Linear(4, 1)

    def interrupted_at_5(step, micro):
        if step == 5:
            raise KeyboardInterrupt
        return model(torch.ones(2, 4)).pow(2).mean()

    with pytest.raises(Stopped) as caught:
        run_training(RunSettings(tmp_path, steps=20, checkpoint_every=100, progress=False), "toy",
                     {"model": model}, interrupted_at_5)
    checkpoint = tmp_path / "checkpoint.pt"
    assert caught.value.exit_code == 130 and caught.value.checkpoint == checkpoint
    assert str(caught.value) == (f"toy: stopped at step 5; checkpoint saved at {checkpoint} "
                                 "(run the same command again to resume)")
    assert torch.load(checkpoint, weights_only=True)["step"] == 5


def test_ctrl_c_on_the_cli_prints_a_plain_stopped_line(tmp_path):
    build_tiny_base(tmp_path / "base")
    command = [sys.executable, "-m", "kekong.cli", "train", "controlnet", "--base", str(tmp_path / "base"),
               "--out", str(tmp_path / "run"), "--data", "shapes", "--limit", "24", "--steps", "400",
               "--batch-size", "2", "--checkpoint-every", "3", "--validate-every", "1000"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (tmp_path / "run" / "checkpoint.pt").is_file() and time.time() < deadline:
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    _, err = process.communicate(timeout=120)
    lines = [line for line in err.splitlines() if "stopped" in line]
    assert process.returncode == 130, err
    assert len(lines) == 1 and lines[0].startswith("controlnet: stopped at step "), err
    assert f"checkpoint saved at {tmp_path / 'run' / 'checkpoint.pt'}" in lines[0]
    assert "error" not in err and "unexpected" not in err and "Traceback" not in err, err
