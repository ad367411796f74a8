"""Generation speed: kekong's loop vs stock diffusers StableDiffusionControlNetPipeline on the
same SD1.5-size components (random weights: cost does not depend on weight values). UniPC,
CFG 7.5, one ControlNet unit. Prints a Markdown table.

Speed: one process per size builds the models once and runs stock and kekong alternately
(A-B-A-B…), so both use the same weights in the same memory and drift on a noisy VM hits both
alike; each side's median s/step is reported. Peak RSS: each side once more in its own process
(RSS is per process), which also checks that both make the same image.

    python benchmarks/generation.py            # 256 and 512, guidance end 1.0 and 0.5
    python benchmarks/generation.py --sizes 256 --repeat 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CFG = 7.5


def build(size: int):
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from kekong.models.load import BaseModel
    from kekong.models.refs import ModelRef
    from kekong.models.single_file import CONFIGS, clip_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(CONFIGS / "sd15" / "unet")).eval()
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(CONFIGS / "sd15" / "vae")).eval()
    text = CLIPTextModel(CLIPTextConfig.from_pretrained(CONFIGS / "sd15" / "text_encoder")).eval()
    controlnet = ControlNetModel.from_unet(unet).eval()
    with torch.no_grad():  # zero convolutions are zero at init; give them values like a trained model
        for name, param in controlnet.named_parameters():
            if "controlnet_down_blocks" in name or "controlnet_mid_block" in name:
                param.normal_(0, 0.01)
    scheduler = json.loads((CONFIGS / "sd15" / "scheduler" / "scheduler_config.json").read_text())
    base = BaseModel(ModelRef("random", Path("."), "random-sd15"), unet, vae, [text], [clip_tokenizer()], scheduler)
    return base, controlnet


def control_image(size: int):
    import numpy as np

    image = np.zeros((size, size, 3), np.uint8)
    image[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    return image


def stock_image(built, size: int, steps: int, end: float, units: int = 1, times: list[float] | None = None):
    """diffusers' StableDiffusionControlNetPipeline on the built components (`units` copies of the
    ControlNet, each on the same map), UniPC, CFG 7.5, seed 1: the uint8 image. `times` gets a
    timestamp before sampling and one after each step. The one stock builder of the benchmarks."""
    import torch
    from diffusers import StableDiffusionControlNetPipeline

    from kekong.generation.samplers import make_scheduler

    base, controlnet = built
    nets = controlnet
    if units > 1:
        from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

        nets = MultiControlNetModel([controlnet] * units)
    pipe = StableDiffusionControlNetPipeline(
        vae=base.vae, text_encoder=base.text_encoders[0], tokenizer=base.tokenizers[0], unet=base.unet,
        controlnet=nets, scheduler=make_scheduler("UniPC", "Automatic", base.scheduler_config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    cond = torch.from_numpy(control_image(size)).permute(2, 0, 1)[None].float() / 255
    stamps = times if times is not None else []

    def on_end(pipe, i, t, kwargs):
        stamps.append(time.perf_counter())
        return kwargs

    stamps.append(time.perf_counter())
    out = pipe("a photo", image=cond if units == 1 else [cond] * units, num_inference_steps=steps,
               guidance_scale=CFG, height=size, width=size, generator=torch.Generator().manual_seed(1),
               control_guidance_end=end if units == 1 else [end] * units, output_type="np",
               callback_on_step_end=on_end).images[0]
    return (out * 255).round().astype("uint8")


def kekong_image(built, size: int, steps: int, end: float, units: int = 1, fields: dict | None = None,
                 times: list[float] | None = None):
    """The same generation through kekong's pipeline (`fields`: more request fields, e.g. fast mode)."""
    import numpy as np

    from kekong.generation import control as control_module
    from kekong.generation import pipeline
    from kekong.request import build_request

    base, controlnet = built
    controls = [{"module": "none", "image": "x.png", "model": "m", "end": end}] * units
    request = build_request(prompt="a photo", width=size, height=size, steps=steps, cfg_scale=CFG, seed=1,
                            sampler="UniPC", controls=controls, **(fields or {}))
    prepared = [control_module.PreparedUnit(request.controls[i], i, controlnet, "m", "m", f"k{i}",
                                            control_module.to_tensor(control_image(size)))
                for i in range(units)]
    stamps = times if times is not None else []
    stamps.append(time.perf_counter())
    image = pipeline.run_batch(base, request, prepared, [1], None, lambda info: stamps.append(time.perf_counter()))[0]
    return np.asarray(image)


def run_one(impl: str, size: int, end: float, steps: int, built=None) -> dict:
    built = built or build(size)
    times: list[float] = []
    make = stock_image if impl == "stock" else kekong_image
    image = make(built, size, steps, end, times=times)
    per_step = (times[-1] - times[1]) / (len(times) - 2)  # steps 2..N: the first carries warm-up
    return {"impl": impl, "size": size, "end": end, "s_per_step": per_step,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "image_sha": hashlib.sha256(image.tobytes()).hexdigest()[:16]}


def flops(size: int) -> dict:
    """Model FLOPs of one CFG step (UNet and ControlNet at batch 2) and this machine's matmul FLOP/s."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    base, controlnet = build(size)
    latents = torch.randn(2, 4, size // 8, size // 8)
    embeds = torch.randn(2, 77, 768)
    cond = torch.rand(2, 3, size, size)
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            base.unet(latents, 500, encoder_hidden_states=embeds)
        unet_flops = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            controlnet(latents, 500, encoder_hidden_states=embeds, controlnet_cond=cond)
        cn_flops = counter.get_total_flops()
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    matmul = 10 * 2 * 2048**3 / (time.perf_counter() - start)
    return {"unet": unet_flops, "controlnet": cn_flops, "matmul_flops_per_s": matmul}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", nargs=4, metavar=("IMPL", "SIZE", "END", "STEPS"))
    parser.add_argument("--flops", type=int)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--alternate", nargs=3, metavar=("SIZE", "STEPS", "REPEAT"))
    parser.add_argument("--steps", type=int, help="default: 10 at 256 px and below, 6 above")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each side, alternating")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), float(args.one[2]), int(args.one[3]))))
        return
    if args.alternate:
        size, steps, repeat = map(int, args.alternate)
        built = build(size)
        timings: dict[str, list[float]] = {}
        for end in (1.0, 0.5):
            for r in range(repeat):
                for impl in ("stock", "kekong") if r % 2 == 0 else ("kekong", "stock"):
                    timings.setdefault(f"{impl} {end}", []).append(run_one(impl, size, end, steps, built)["s_per_step"])
        print(json.dumps(timings))
        return
    if args.flops:
        print(json.dumps(flops(args.flops)))
        return

    def child(*extra: str) -> dict:
        done = subprocess.run([sys.executable, __file__, *extra], capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    print("| size | steps | guidance end | stock s/step | kekong s/step | speed-up | ideal | same image | "
          "peak RSS stock / kekong (GB) | FLOP efficiency kekong |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        f = child("--flops", str(size))
        steps = args.steps or (10 if size <= 256 else 6)
        timings = child("--alternate", str(size), str(steps), str(args.repeat))
        for end in (1.0, 0.5):
            stock, ours = (child("--one", impl, str(size), str(end), "3") for impl in ("stock", "kekong"))
            stock["s_per_step"] = statistics.median(timings[f"stock {end}"])
            ours["s_per_step"] = statistics.median(timings[f"kekong {end}"])
            full = f["unet"] + f["controlnet"]
            ideal = full / (f["unet"] + f["controlnet"] * end)
            step_flops = f["unet"] + f["controlnet"] * end
            efficiency = step_flops / ours["s_per_step"] / f["matmul_flops_per_s"]
            print(f"| {size} | {steps} | {end} | {stock['s_per_step']:.3f} | {ours['s_per_step']:.3f} | "
                  f"{stock['s_per_step'] / ours['s_per_step']:.2f}× | {ideal:.2f}× | "
                  f"{'yes' if stock['image_sha'] == ours['image_sha'] else 'NO'} | "
                  f"{stock['peak_rss_gb']:.2f} / {ours['peak_rss_gb']:.2f} | {efficiency:.0%} |", flush=True)
    print(f"\nmatmul fp32: {f['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s; UNet {f['unet'] / 1e9:.0f} GFLOP and "
          f"ControlNet {f['controlnet'] / 1e9:.0f} GFLOP per CFG step at {size}px")


if __name__ == "__main__":
    main()
