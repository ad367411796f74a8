"""Prompt edits switch at the model evaluation A1111 switches at: A1111's CFGDenoiser picks the
conditioning with its step counter, from 0 (`current_step <= end_at_step`), so `[a:b:10]` at 20
steps gives `a` for 11 evaluations; an img2img pass schedules its edits over all of its `steps`
(not the steps it runs) and counts from its own first step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import kekong
import kekong.models.configs
from kekong.generation import loop, text
from kekong.generation.loop import Guidance, denoise
from kekong.generation.samplers import make_scheduler
from kekong.generation.text import Conditioning
from tests.tiny_models import build_tiny_base

SD15 = json.loads((Path(kekong.models.configs.__file__).parent / "sd15" / "scheduler" /
                   "scheduler_config.json").read_text())
A, B = Conditioning(torch.zeros(1, 3, 5)), Conditioning(torch.ones(1, 3, 5))


class Recording:
    def __init__(self):
        self.seen: list[float] = []

    def __call__(self, sample, t, encoder_hidden_states, return_dict=False, **_):
        self.seen.append(float(encoder_hidden_states.mean()))
        return (torch.zeros_like(sample),)


def test_an_edit_at_step_10_of_20_switches_after_11_evaluations():
    scheduler = make_scheduler("Euler", "Automatic", SD15)
    scheduler.set_timesteps(20)
    unet = Recording()
    guidance = Guidance([(1.0, [(10, A), (20, B)])], None, 1.0, 20)
    denoise(unet, scheduler, torch.zeros(1, 4, 4, 4), scheduler.timesteps, guidance, [], [torch.Generator()])
    assert unet.seen == [0.0] * 11 + [1.0] * 9


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(build_tiny_base(tmp_path_factory.mktemp("edits") / "base"))


def test_img2img_schedules_edits_over_all_its_steps(monkeypatch, tmp_path, tiny):
    scheduled, counters = [], []
    real_schedules, real_inputs = text.encode_schedules, Guidance.inputs

    def schedules(base, prompts, negatives, steps, *args):
        scheduled.append(steps)
        return real_schedules(base, prompts, negatives, steps, *args)

    def inputs(self, step):
        counters.append(step)
        return real_inputs(self, step)

    monkeypatch.setattr("kekong.generation.pipeline.encode_schedules", schedules)
    monkeypatch.setattr(loop.Guidance, "inputs", inputs)
    picture = tmp_path / "in.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(picture)
    kekong.generate(prompt="[a red star:a blue heart:0.5]", model=tiny, width=64, height=64, steps=20, seed=3,
                    sampler="Euler", init_image=str(picture), denoising_strength=0.5)
    assert scheduled == [20]  # the edit ends at step 10 of 20, as A1111 schedules it
    assert counters == list(range(11))  # the 11 steps run count 0..10: all of them before the edit


def test_a_second_order_sampler_schedules_edits_over_twice_its_steps(monkeypatch, tiny):
    """A1111's total_steps: Heun's 4 steps are 8 scheduled steps; its 7 evaluations count 0..6."""
    scheduled, counters = [], []
    real_schedules, real_inputs = text.encode_schedules, Guidance.inputs

    def schedules(base, prompts, negatives, steps, *args):
        scheduled.append(steps)
        return real_schedules(base, prompts, negatives, steps, *args)

    def inputs(self, step):
        counters.append(step)
        return real_inputs(self, step)

    monkeypatch.setattr("kekong.generation.pipeline.encode_schedules", schedules)
    monkeypatch.setattr(loop.Guidance, "inputs", inputs)
    kekong.generate(prompt="[a red star:a blue heart:2]", model=tiny, width=64, height=64, steps=4, seed=3,
                    sampler="Heun")
    assert scheduled == [8] and counters == list(range(7))  # [a:b:2] switches after 3 evaluations, as A1111
