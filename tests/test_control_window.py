"""A control unit's guidance window (start, end). kekong applies diffusers' rule to the A1111 step an
evaluation belongs to: active when step / steps ≥ start and (step + 1) / steps ≤ end. With DPM adaptive a
step is one of its tries (three evaluations), as sd-webui-controlnet counts them (it reads A1111's step
counter, which the sampler's callback sets once a try); kekong used to count evaluations, so a window
ended about 3× sooner. The extension's own rule, start ≤ s / steps ≤ end with s A1111's counter (the last
finished step: 0 for the first two), is written out below: kekong's windows start and end one step
earlier than the extension's (pinned here, so a change of rule is a deliberate one)."""

from __future__ import annotations

from typing import ClassVar

import torch

from kekong.generation.units.base import Unit
from kekong.request import ControlUnit
from tests.test_dpm_adaptive import SD15, UNet, X  # the same model stand-in


class Probe(Unit):
    """Records, for each UNet call, whether each of its units is inside its window."""

    seen: ClassVar[list[list[bool]]] = []

    @classmethod
    def contribute(cls, units, step):
        cls.seen.append([unit.active(step.index, step.total) for unit in units])
        return None


def probe(start: float = 0.0, end: float = 1.0) -> Probe:
    return Probe(ControlUnit(module="none", image="x.png", start=start, end=end), 0, None, "", "", "")


def run(sampler: str, steps: int, units: list[Probe]) -> list[list[bool]]:
    from kekong.generation.loop import Guidance, denoise
    from kekong.generation.samplers import make_scheduler
    from kekong.generation.text import Conditioning

    Probe.seen = []
    scheduler = make_scheduler(sampler, "Automatic", SD15, [3, 4])
    scheduler.set_timesteps(steps)
    guidance = Guidance([(1.0, [(steps, Conditioning(torch.zeros(2, 3, 5)))])], None, 1.0, steps)
    denoise(UNet(scheduler), scheduler, X * scheduler.init_noise_sigma, scheduler.timesteps, guidance, units,
            [torch.Generator().manual_seed(s) for s in (3, 4)])
    return Probe.seen


def test_dpm_adaptive_windows_count_its_tries_against_the_steps():
    steps = 6
    seen = run("DPM adaptive", steps, [probe(end=0.5), probe(start=0.5), probe()])
    evaluations = len(seen)
    assert evaluations % 3 == 0 and evaluations > 3 * steps * 0.5
    tries = [index // 3 for index in range(evaluations)]
    assert [flags[0] for flags in seen] == [(t + 1) / steps <= 0.5 for t in tries]  # the first 3 tries: 9 calls
    assert sum(flags[0] for flags in seen) == 9
    assert [flags[1] for flags in seen] == [t / steps >= 0.5 and (t + 1) / steps <= 1 for t in tries]
    assert all(flags[2] for flags in seen[:3 * steps])  # the whole window holds for `steps` tries, not evaluations


def test_a_fixed_step_sampler_counts_its_steps():
    seen = run("Euler", 20, [probe(end=0.5), probe(start=0.2, end=0.8)])
    assert len(seen) == 20
    assert [flags[0] for flags in seen] == [step < 10 for step in range(20)]
    assert [flags[1] for flags in seen] == [4 <= step < 16 for step in range(20)]


def extension_active(step: int, steps: int, start: float, end: float) -> bool:
    """sd-webui-controlnet's hook: A1111's sampling_step (the callback of the step before; 0 at first) / steps."""
    counter = max(step - 1, 0)
    return start <= counter / steps <= end


def test_kekongs_window_is_one_step_earlier_than_the_extensions():
    unit = probe(start=0.2, end=0.5)
    kekong = [step for step in range(20) if unit.active(step, 20)]
    extension = [step for step in range(20) if extension_active(step, 20, 0.2, 0.5)]
    assert kekong == list(range(4, 10)) and extension == list(range(5, 12))
    whole = probe()
    assert all(whole.active(step, 20) for step in range(20))
    assert all(extension_active(step, 20, 0.0, 1.0) for step in range(20))  # the default window: the same
