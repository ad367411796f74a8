"""Fast mode's fidelity on the shipped model (issue 28): the shapes bench (`kekong bench control`:
IoU of the generated shape against the outline's filled shape, colour accuracy) run for the exact
path and each fast-mode variant on the same held-out conditions, side by side (each condition
through every variant before the next), with ms/image.

    python benchmarks/fast_fidelity.py --count 60
"""

from __future__ import annotations

import argparse
import time

import numpy as np

VARIANTS = {
    "exact": {},
    "fast (both, interval 4: the default)": {"fast": True},
    "fast (both, interval 3)": {"fast": True, "fast_interval": 3},
    "fast: deep_cache": {"fast": True, "fast_parts": ["deep_cache"]},
    "fast: control_reuse": {"fast": True, "fast_parts": ["control_reuse"]},
}


def main() -> None:
    from kekong.generation.control import PreparedUnit, to_tensor
    from kekong.generation.pipeline import run_batch
    from kekong.models.load import load_base, load_controlnet
    from kekong.request import ControlUnit, build_request
    from kekong.train.bench import BENCH_CFG, HELD_OUT_SEED, random_sample, score

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = parser.parse_args()
    base = load_base(None)
    controlnet, ref = load_controlnet(base.controlnets["none"])
    size = base.unet.config.sample_size * base.vae_scale
    rng = np.random.default_rng(HELD_OUT_SEED)
    samples = [random_sample(rng, size) for _ in range(args.count)]
    scores: dict[str, list[dict]] = {name: [] for name in args.variants}
    seconds = dict.fromkeys(args.variants, 0.0)
    for index, sample in enumerate(samples):
        unit = ControlUnit(module="none", image="bench", weight=1.0)
        units = [PreparedUnit(unit, 0, controlnet, ref.name, ref.name, f"bench-{index}", to_tensor(sample.outline))]
        for name in args.variants:
            request = build_request(prompt=sample.prompt, width=size, height=size, steps=args.steps,
                                    cfg_scale=BENCH_CFG, seed=index, **VARIANTS[name])
            start = time.perf_counter()
            image = run_batch(base, request, units, [index], None, None)[0]
            seconds[name] += time.perf_counter() - start
            scores[name].append(score(image, sample))
    exact = float(np.mean([s["iou"] for s in scores[args.variants[0]]]))
    print(f"shipped {base.name} + {ref.name}, {size}², {args.steps} steps, CFG {BENCH_CFG}, {args.count} held-out "
          f"conditions (seed {HELD_OUT_SEED})\n")
    print("| variant | IoU | IoU loss vs exact | goal ≤ 0.02 | colour accuracy | ms/image | speed-up |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for name in args.variants:
        iou = float(np.mean([s["iou"] for s in scores[name]]))
        colour = float(np.mean([(s["shape_colour"] + s["background_colour"]) / 2 for s in scores[name]]))
        loss = exact - iou
        print(f"| {name} | {iou:.3f} | {loss:+.3f} | {'✓' if loss <= 0.02 else '✗'} | {colour:.3f} | "
              f"{1000 * seconds[name] / args.count:.0f} | {seconds[args.variants[0]] / seconds[name]:.2f}× |")


if __name__ == "__main__":
    main()
