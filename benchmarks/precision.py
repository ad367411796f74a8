"""Storage and arithmetic precision of the denoiser, side by side (issue 28 item 1).

One UNet call (CFG batch of 2, a 32² latent = 256² images) at SD 1.5 size and SDXL size, random
weights (cost does not depend on their values), for each choice: fp32 (`KEKONG_WEIGHTS=fp32`, as
`auto` would store SDXL in fp16); fp16 or bf16 storage with fp32 arithmetic (`KEKONG_WEIGHTS`,
widened once per layer call, big weights into a per-thread scratch buffer — and, to show what that
buffer saves, fp16 with every widened weight a new tensor); bf16 storage and arithmetic
(`KEKONG_COMPUTE=bf16`, only on a CPU with bf16 instructions). Each choice runs in its own process
(an SDXL UNet is 10 GB in fp32), in the order A B C D then D C B A, so drift on a shared machine
hits all alike; the median call is reported with its ratio to fp32 and the relative L2 error of its
output against fp32's.

    .venv/bin/python benchmarks/precision.py [--latent 32] [--rounds 2] [--models sd15,sdxl]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHOICES = {"fp32": {"KEKONG_WEIGHTS": "fp32"}, "fp16 storage": {"KEKONG_WEIGHTS": "fp16"},
           # before the per-thread scratch buffer: every widened weight a new tensor (this script's own switch)
           "fp16 storage, new tensor per call": {"KEKONG_WEIGHTS": "fp16", "BENCH_NO_SCRATCH": "1"},
           "bf16 storage": {"KEKONG_WEIGHTS": "bf16"}, "bf16 compute": {"KEKONG_COMPUTE": "bf16"}}


def child(model: str, latent: int, calls: int, out: str) -> None:
    import torch
    from diffusers import UNet2DConditionModel

    from kekong.models import precision
    from kekong.models.single_file import CONFIGS

    if os.environ.get("BENCH_NO_SCRATCH"):
        precision.SCRATCH_MIN = 2**62
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(CONFIGS / model / "unet")).eval()
    unet = precision.for_denoiser(unet, precision.storage_dtype(precision.model_fp32_bytes(unet)))
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, latent, latent, generator=generator)
    width = unet.config.cross_attention_dim
    e = torch.randn(2, 77, width, generator=generator)
    added = None
    if model == "sdxl":
        added = {"text_embeds": torch.randn(2, 1280, generator=generator),
                 "time_ids": torch.tensor([[1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0]] * 2)}
    times, output = [], None
    with torch.inference_mode():
        for _ in range(calls + 1):  # the first call warms up
            start = time.perf_counter()
            output = unet(x, torch.tensor([500]), encoder_hidden_states=e, added_cond_kwargs=added).sample
            times.append(time.perf_counter() - start)
    torch.save(output.float(), out + ".pt")
    Path(out + ".json").write_text(json.dumps({"times": times[1:]}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latent", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--models", default="sd15,sdxl")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.latent, args.calls, args.child[1])
        return
    import torch

    from kekong.models.precision import cpu_has_bf16

    choices = dict(CHOICES)
    if not cpu_has_bf16():  # KEKONG_COMPUTE=bf16 is refused on such a CPU: nothing to measure
        del choices["bf16 compute"]
    folder = Path(tempfile.mkdtemp(prefix="kekong-precision-"))
    print(f"## Precision of the denoiser (`benchmarks/precision.py`) — {time.strftime('%Y-%m-%d')}\n")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the start; one "
          f"UNet call, CFG batch 2, {args.latent}² latent; median of {args.calls} calls × {args.rounds} rounds; "
          f"bf16 instructions: {'yes' if cpu_has_bf16() else 'no (bf16 compute not measured)'}.\n")
    print("| model | choice | s per call | ratio to fp32 | rel. L2 error vs fp32 |\n|---|---|---|---|---|")
    for model in args.models.split(","):
        times: dict[str, list[float]] = {name: [] for name in choices}
        for round_ in range(args.rounds):
            order = list(choices) if round_ % 2 == 0 else list(reversed(choices))
            for name in order:
                out = str(folder / f"{model}-{name.replace(' ', '_')}-{round_}")
                env = {**os.environ, **CHOICES[name]}
                subprocess.run([sys.executable, __file__, "--latent", str(args.latent), "--calls", str(args.calls),
                                "--child", model, out], env=env, check=True)
                times[name] += json.loads(Path(out + ".json").read_text())["times"]
        reference = torch.load(folder / f"{model}-fp32-0.pt")
        base = statistics.median(times["fp32"])
        for name in choices:
            output = torch.load(folder / f"{model}-{name.replace(' ', '_')}-0.pt")
            error = float((output - reference).norm() / reference.norm())
            median = statistics.median(times[name])
            print(f"| {model} | {name} | {median:.2f} | {median / base:.2f} | {error:.2e} |", flush=True)


if __name__ == "__main__":
    main()
