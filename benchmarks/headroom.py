"""Exact-mode headroom (issue 28 item 3): one CFG step of the SD1.5-size UNet + ControlNet (random
weights, batch 2: ControlNet, then the UNet with its residuals) as kekong runs it (eager, no_grad),
against the same step with the weights in channels_last, traced + `torch.jit.freeze` +
`optimize_for_inference` (oneDNN's conv/bias/activation fusion), and `torch.compile` (inductor).

Each variant runs in its own process beside the eager step (built once there: trace / compile time is
reported apart, as a model cache would pay it once per loaded model), the two alternating (A-B, then
B-A) so a loaded machine's drift hits both alike; medians. One process per pair keeps memory at one
model plus one variant (a frozen trace holds its own copy of the weights). The noise prediction is
compared with the eager one (max |Δ| and relative L2); FLOP efficiency = the step's FLOPs ÷ step
time ÷ the fp32 matmul rate measured between the rounds of the same process.

    python benchmarks/headroom.py [--size 256] [--repeat 3] [--variants eager channels_last jit compile]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from generation import build

VARIANTS = ("channels_last", "jit", "compile")  # each measured beside the eager step
ADOPT = 1.10  # adopted when at least this much faster for the whole step, output within float noise


class Step(torch.nn.Module):
    """One CFG step as kekong's loop calls it: the ControlNet's residuals into the UNet."""

    def __init__(self, unet: torch.nn.Module, controlnet: torch.nn.Module) -> None:
        super().__init__()
        self.unet, self.controlnet = unet, controlnet

    def forward(self, x: torch.Tensor, t: torch.Tensor, e: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        down, mid = self.controlnet(x, t, encoder_hidden_states=e, controlnet_cond=cond, conditioning_scale=1.0,
                                    guess_mode=False, return_dict=False)
        return self.unet(x, t, encoder_hidden_states=e, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid, return_dict=False)[0]


def matmul_rate() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    start = time.perf_counter()
    for _ in range(5):
        a @ b
    return 5 * 2 * 2048**3 / (time.perf_counter() - start)


def step_flops(step: Step, inputs: tuple[torch.Tensor, ...]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(*inputs)
    return counter.get_total_flops()


def prepare(step: Step, inputs: tuple[torch.Tensor, ...], name: str):
    """(a callable running one step of variant `name`, the seconds it took to prepare: trace, compile)."""
    began = time.perf_counter()
    if name == "channels_last":  # weights and inputs in NHWC (the weights switched before each of its runs)
        nhwc = tuple(i.contiguous(memory_format=torch.channels_last) if i.dim() == 4 else i for i in inputs)
        layout(step, torch.channels_last)
        run = lambda: step(*nhwc)  # noqa: E731
    elif name == "jit":
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(step, inputs, check_trace=False)))
        run = lambda: frozen(*inputs)  # noqa: E731
    elif name == "compile":
        compiled = torch.compile(step)
        run = lambda: compiled(*inputs)  # noqa: E731
    else:
        raise ValueError(name)
    run()
    run()  # the profiling executor / guards settle on the first calls
    return run, time.perf_counter() - began


def layout(step: Step, memory_format: torch.memory_format) -> None:
    step.unet.to(memory_format=memory_format)
    step.controlnet.to(memory_format=memory_format)


@torch.no_grad()
def measure(size: int, repeat: int, name: str) -> dict:
    """Variant `name` beside the eager step, alternating, in this process."""
    base, controlnet = build(size)
    step = Step(base.unet, controlnet).eval()
    del base  # the VAE and text encoder are not part of the step
    generator = torch.Generator().manual_seed(0)
    inputs = (torch.randn(2, 4, size // 8, size // 8, generator=generator), torch.tensor(500),
              torch.randn(2, 77, 768, generator=generator), torch.rand(2, 3, size, size, generator=generator))
    flops = step_flops(step, inputs)
    reference = step(*inputs)
    run, setup = prepare(step, inputs, name)
    output = run().float()
    runs = {"eager": lambda: step(*inputs), name: run}
    times: dict[str, list[float]] = {key: [] for key in runs}
    rates = []
    for r in range(repeat):
        rates.append(matmul_rate())
        for key in list(runs) if r % 2 == 0 else list(runs)[::-1]:
            if name == "channels_last":  # one model, its weights converted in place (not timed)
                layout(step, torch.channels_last if key == name else torch.contiguous_format)
            began = time.perf_counter()
            runs[key]()
            times[key].append(time.perf_counter() - began)
    rate = statistics.median(rates)
    diff = output - reference
    return {"size": size, "flops": flops, "matmul_flops_per_s": rate, "setup_s": setup,
            "eager_s": statistics.median(times["eager"]), "s_per_step": statistics.median(times[name]),
            "max_abs_diff": float(diff.abs().max()), "rel_l2": float(diff.norm() / reference.norm())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--child", choices=VARIANTS, help="(internal) one variant beside eager, as JSON")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.size, args.repeat, args.child)))
        return
    print(f"# exact-mode headroom — {date.today()} — {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), load "
          f"{os.getloadavg()[0]:.1f}; SD1.5-size UNet + ControlNet, one CFG step at {args.size}², "
          f"{args.repeat} alternating rounds per pair\n")
    print("| variant | vs eager (same process) | s/step: eager / variant | FLOP efficiency: eager / variant | "
          "prepare (s) | max abs / rel L2 diff vs eager | adopt? |")
    print("|---|---:|---|---|---:|---|---|")
    for name in args.variants:
        done = subprocess.run([sys.executable, __file__, "--size", str(args.size), "--repeat", str(args.repeat),
                               "--child", name], capture_output=True, text=True, check=False)
        if done.returncode:
            reason = (done.stderr.strip().splitlines() or ["no output"])[-1][:160]
            print(f"| {name} | failed | | | | | no: {reason} |", flush=True)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        speedup = row["eager_s"] / row["s_per_step"]
        close = row["rel_l2"] < 1e-4
        verdict = "yes" if speedup >= ADOPT and close else \
            f"no ({'< 10% faster' if speedup < ADOPT else 'output differs'})"
        efficiency = [row["flops"] / seconds / row["matmul_flops_per_s"] for seconds in (row["eager_s"],
                                                                                           row["s_per_step"])]
        print(f"| {name} | {speedup:.2f}× | {row['eager_s']:.2f} / {row['s_per_step']:.2f} | {efficiency[0]:.0%} / "
              f"{efficiency[1]:.0%} | {row['setup_s']:.1f} | {row['max_abs_diff']:.2e} / {row['rel_l2']:.2e} | "
              f"{verdict} |", flush=True)
    print(f"\n{row['flops'] / 1e9:.0f} GFLOP per step (UNet + ControlNet, batch 2); FLOP efficiency = FLOPs ÷ step "
          "time ÷ the fp32 2048² matmul rate measured between the rounds of the same process.")

if __name__ == "__main__":
    main()
