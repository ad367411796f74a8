"""Speed table (issue 28): stock diffusers vs kekong exact vs kekong fast (each part alone and
together), fp32 vs half-precision storage, FLOP efficiency — SD1.5-size UNet + ControlNet with
random weights (cost does not depend on values), UniPC, CFG 7.5, one unit. Ratios first.

One process per (size, storage) builds the models once and runs every variant alternately
(A-B-C…, then reversed), so drift on a shared machine hits all alike; each variant's median is
reported: s/step (steps 2..N) and end to end (text encoding, sampling, VAE decode).

    python benchmarks/speed.py                         # 256², 10 steps, fp32 + fp16 + bf16 storage
    python benchmarks/speed.py --sizes 256 512 --steps 10 --repeat 2 --units 1 2 --ends 1.0 0.5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generation import CFG, build, control_image, flops

VARIANTS = {  # name → kekong request fields (None: stock diffusers)
    "stock": None,
    "exact": {},
    "fast: deep_cache": {"fast": True, "fast_parts": ["deep_cache"]},
    "fast: control_reuse": {"fast": True, "fast_parts": ["control_reuse"]},
    "fast (both)": {"fast": True},
    "exact, channels_last": {"_channels_last": True},  # issue 28 item 3's probe: weights in NHWC for this run
}


def run_variant(name: str, built, size: int, steps: int, end: float, units: int) -> dict:
    import numpy as np
    import torch

    base, controlnet = built
    times: list[float] = []
    fields = dict(VARIANTS[name]) if VARIANTS[name] is not None else None
    layout = fields.pop("_channels_last", False) if fields is not None else False
    if layout:
        for model in (base.unet, controlnet, base.vae):
            model.to(memory_format=torch.channels_last)
    start = time.perf_counter()
    if fields is None:
        from diffusers import StableDiffusionControlNetPipeline

        from kekong.generation.samplers import make_scheduler

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

        def on_end(pipe, i, t, kwargs):
            times.append(time.perf_counter())
            return kwargs

        times.append(time.perf_counter())
        out = pipe("a photo", image=cond if units == 1 else [cond] * units, num_inference_steps=steps,
                   guidance_scale=CFG, height=size, width=size, generator=torch.Generator().manual_seed(1),
                   control_guidance_end=end if units == 1 else [end] * units, output_type="np",
                   callback_on_step_end=on_end).images[0]
        image = (out * 255).round().astype("uint8")
    else:
        from kekong.generation import control as control_module
        from kekong.generation import pipeline
        from kekong.request import build_request

        controls = [{"module": "none", "image": "x.png", "model": "m", "end": end}] * units
        request = build_request(prompt="a photo", width=size, height=size, steps=steps, cfg_scale=CFG, seed=1,
                                sampler="UniPC", controls=controls, **fields)
        prepared = [control_module.PreparedUnit(request.controls[i], i, controlnet, "m", "m", f"k{i}",
                                                control_module.to_tensor(control_image(size)))
                    for i in range(units)]
        times.append(time.perf_counter())
        image = pipeline.run_batch(base, request, prepared, [1], None,
                                   lambda info: times.append(time.perf_counter()))[0]
    total = time.perf_counter() - start
    if layout:
        for model in (base.unet, controlnet, base.vae):
            model.to(memory_format=torch.contiguous_format)
    return {"s_per_step": (times[-1] - times[1]) / (len(times) - 2), "end_to_end_s": total,
            "image": np.asarray(image)}


def storage(built, dtype_name: str):
    """The same models with their Linear/Conv weights stored as `dtype_name` (kekong's own path)."""
    from kekong.models import precision

    base, controlnet = built
    dtype = precision.CHOICES[dtype_name]
    precision.keep_in(base.unet, dtype)
    precision.keep_in(controlnet, dtype)
    return base, controlnet


def alternate(size: int, steps: int, repeat: int, dtype_name: str, end: float, units: int, names: list[str]) -> dict:
    import numpy as np

    built = storage(build(size), dtype_name)
    timings: dict[str, list[dict]] = {name: [] for name in names}
    images: dict[str, np.ndarray] = {}
    for r in range(repeat):
        for name in names if r % 2 == 0 else names[::-1]:
            result = run_variant(name, built, size, steps, end, units)
            images[name] = result.pop("image")
            timings[name].append(result)
    reference = images.get("stock", images.get("exact"))
    out = {}
    for name in names:
        diff = np.abs(images[name].astype(int) - reference.astype(int))
        out[name] = {"s_per_step": statistics.median(t["s_per_step"] for t in timings[name]),
                     "end_to_end_s": statistics.median(t["end_to_end_s"] for t in timings[name]),
                     "max_diff": int(diff.max()), "mean_diff": float(diff.mean())}
    return out


def child(*extra: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *extra], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--units", type=int, nargs="+", default=[1])
    parser.add_argument("--ends", type=float, nargs="+", default=[1.0])
    parser.add_argument("--storages", nargs="+", default=["fp32", "fp16", "bf16"])
    parser.add_argument("--child", nargs=5, metavar=("SIZE", "STORAGE", "END", "UNITS", "VARIANTS"))
    parser.add_argument("--flops", type=int)
    parser.add_argument("--variants", nargs="+", help="only these (names as in the table)")
    args = parser.parse_args()
    if args.child:
        size, dtype_name, end, units, names = args.child
        print(json.dumps(alternate(int(size), args.steps, args.repeat, dtype_name, float(end), int(units),
                                   names.split(","))))
        return
    if args.flops:
        print(json.dumps(flops(args.flops)))
        return
    print("| size | units | end | storage | variant | s/step | end to end (s) | vs stock (step / e2e) | "
          "max / mean pixel diff vs stock | FLOP efficiency |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        f = child("--flops", str(size))
        for units in args.units:
            for end in args.ends:
                for dtype_name in args.storages:
                    names = list(VARIANTS) if dtype_name == "fp32" else ["exact", "fast (both)"]
                    names = [n for n in names if n in args.variants] if args.variants else names
                    result = child("--steps", str(args.steps), "--repeat", str(args.repeat), "--child", str(size),
                                   dtype_name, str(end), str(units), ",".join(names))
                    stock = result.get("stock")
                    for name in names:
                        row = result[name]
                        ratio = (f"{stock['s_per_step'] / row['s_per_step']:.2f}× / "
                                 f"{stock['end_to_end_s'] / row['end_to_end_s']:.2f}×") if stock else "—"
                        work = f["unet"] + units * f["controlnet"] * end
                        efficiency = work / row["s_per_step"] / f["matmul_flops_per_s"]
                        print(f"| {size} | {units} | {end} | {dtype_name} | {name} | {row['s_per_step']:.3f} | "
                              f"{row['end_to_end_s']:.2f} | {ratio} | {row['max_diff']} / {row['mean_diff']:.2f} | "
                              f"{efficiency:.0%} |", flush=True)
        print(f"\nmatmul fp32 {f['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s; UNet {f['unet'] / 1e9:.0f} and ControlNet "
              f"{f['controlnet'] / 1e9:.0f} GFLOP per CFG step at {size}px (FLOP efficiency: the exact step's "
              "FLOPs ÷ step time ÷ matmul rate; for fast rows the same numerator, so it reads as effective)")


if __name__ == "__main__":
    main()
