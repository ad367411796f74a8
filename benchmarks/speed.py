"""Speed table (issue 28): stock diffusers vs kekong exact vs kekong fast (each part alone and
together), fp32 vs half-precision storage, FLOP efficiency — SD1.5-size UNet + ControlNet with
random weights (cost does not depend on values), UniPC, CFG 7.5, 1 or 2 units. Ratios first; images are
compared with stock diffusers' fp32 image (pixel levels); `--startup` adds the CLI start-up line.

One process per (size, units, end, storage) builds the models once and runs every variant alternately
(A-B-C…, then reversed), so drift on a shared machine hits all alike; each variant's median is
reported: s/step (steps 2..N) and end to end (text encoding, sampling, VAE decode).

    python benchmarks/speed.py                         # 256², 10 steps, fp32 + fp16 + bf16 storage
    python benchmarks/speed.py --sizes 256 512 --steps 10 --repeat 2 --units 1 2 --ends 1.0 0.5
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
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generation import build, flops, kekong_image, stock_image

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
        image = stock_image(built, size, steps, end, units, times)
    else:
        image = kekong_image(built, size, steps, end, units, fields, times)
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


def alternate(size: int, steps: int, repeat: int, dtype_name: str, end: float, units: int, names: list[str],
              save: Path) -> dict:
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
        np.save(save / f"{size}-{units}-{end}-{dtype_name}-{name}.npy", images[name])
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
    parser.add_argument("--child", nargs=6, metavar=("SIZE", "STORAGE", "END", "UNITS", "VARIANTS", "SAVE"))
    parser.add_argument("--flops", type=int)
    parser.add_argument("--variants", nargs="+", help="only these (names as in the table)")
    parser.add_argument("--startup", action="store_true", help="also the CLI start-up (benchmarks/startup.py)")
    args = parser.parse_args()
    if args.child:
        size, dtype_name, end, units, names, save = args.child
        print(json.dumps(alternate(int(size), args.steps, args.repeat, dtype_name, float(end), int(units),
                                   names.split("|"), Path(save))))
        return
    if args.flops:
        print(json.dumps(flops(args.flops)))
        return
    import numpy as np

    print(f"# speed (issue 28) — {date.today()} — {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {args.steps} steps, {args.repeat} alternating "
          "rounds per variant\n")
    print("| size | units | end | storage | variant | vs stock: s/step | vs stock: end to end | vs fp32, same variant "
          "(s/step)† | s/step | end to end (s) | max / mean pixel diff vs stock fp32 | FLOP efficiency |")
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|---|---:|")
    save = Path(tempfile.mkdtemp(prefix="kekong-speed-"))
    for size in args.sizes:
        f = child("--flops", str(size))
        for units in args.units:
            for end in args.ends:
                fp32: dict = {}
                for dtype_name in args.storages:
                    names = list(VARIANTS) if dtype_name == "fp32" else ["exact", "fast (both)"]
                    names = [n for n in names if n in args.variants] if args.variants else names
                    result = child("--steps", str(args.steps), "--repeat", str(args.repeat), "--child", str(size),
                                   dtype_name, str(end), str(units), "|".join(names), str(save))
                    if dtype_name == "fp32":
                        fp32 = result
                    stock = fp32.get("stock")
                    reference = save / f"{size}-{units}-{end}-fp32-stock.npy"
                    for name in names:
                        row = result[name]
                        vs_stock = (f"{stock['s_per_step'] / row['s_per_step']:.2f}×",
                                    f"{stock['end_to_end_s'] / row['end_to_end_s']:.2f}×") if stock else ("—", "—")
                        same = fp32.get(name)
                        vs_fp32 = f"{row['s_per_step'] / same['s_per_step']:.2f}×" if same and dtype_name != "fp32" \
                            else "—"
                        diff = "—"
                        if reference.exists():
                            a = np.load(reference).astype(int)
                            b = np.load(save / f"{size}-{units}-{end}-{dtype_name}-{name}.npy").astype(int)
                            diff = f"{np.abs(a - b).max()} / {np.abs(a - b).mean():.2f}"
                        work = f["unet"] + units * f["controlnet"] * end
                        efficiency = work / row["s_per_step"] / f["matmul_flops_per_s"]
                        print(f"| {size} | {units} | {end} | {dtype_name} | {name} | {vs_stock[0]} | {vs_stock[1]} | "
                              f"{vs_fp32} | {row['s_per_step']:.3f} | {row['end_to_end_s']:.2f} | {diff} | "
                              f"{efficiency:.0%} |", flush=True)
        print(f"\nat {size}px: matmul fp32 {f['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s; UNet {f['unet'] / 1e9:.0f} and "
              f"ControlNet {f['controlnet'] / 1e9:.0f} GFLOP per CFG step. FLOP efficiency: the exact step's FLOPs ÷ "
              "step time ÷ matmul rate (fast rows: the same numerator, so it reads as effective). † the storages "
              "run in separate processes one after the other (not alternated).")
    if args.startup:  # benchmarks/startup.py's own report (its table of imports), in this run
        print("\n## start-up (benchmarks/startup.py)\n", flush=True)
        subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "startup.py")], check=False)


if __name__ == "__main__":
    main()
