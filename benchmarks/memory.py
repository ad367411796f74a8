"""Peak memory of real-size generation: SD 1.5 + 2 ControlNets at 512² and SDXL + 1 ControlNet at
1024², random weights at real size (memory does not depend on weight values), loaded through
kekong's own loading path from fp16 diffusers folders as checkpoints ship.

Each case runs in a fresh process and reports its peak RSS (ru_maxrss) and time. The models are
built once into ~/.cache/kekong/bench-models (≈ 13 GB).

    python benchmarks/memory.py [--steps 1] [--cases sd15-auto,sd15-fp16,sdxl-auto]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("KEKONG_BENCH_MODELS", Path.home() / ".cache" / "kekong" / "bench-models"))
CONFIGS = Path(__file__).resolve().parent.parent / "kekong" / "models" / "configs"
CASES = {
    # name: (family, controlnets, size, KEKONG_WEIGHTS, KEKONG_OFFLOAD)
    "sd15-auto": ("sd15", 2, 512, "auto", "none"),
    "sd15-fp16": ("sd15", 2, 512, "fp16", "none"),
    "sdxl-auto": ("sdxl", 1, 1024, "auto", "none"),
    "sdxl-offload": ("sdxl", 1, 1024, "auto", "text-encoders"),
    "sdxl-fp32": ("sdxl", 1, 1024, "fp32", "none"),  # weights alone are ~19 GB: only with --cases sdxl-fp32
}


def build(family: str) -> Path:
    """A diffusers folder of random fp16 weights with the real architecture; and its ControlNets."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    folder = ROOT / family
    if (folder / "done").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    source = CONFIGS / family
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(source / "unet"))
    unet.half().save_pretrained(folder / "unet")
    controlnet = ControlNetModel.from_config(ControlNetModel.load_config(CONFIGS / f"controlnet_{family}"))
    controlnet.half().save_pretrained(folder / "controlnet-a")
    del unet, controlnet
    AutoencoderKL.from_config(AutoencoderKL.load_config(source / "vae")).half().save_pretrained(folder / "vae")
    encoders = [("text_encoder", CLIPTextModel)] + ([("text_encoder_2", CLIPTextModelWithProjection)]
                                                     if family == "sdxl" else [])
    for name, cls in encoders:
        cls(CLIPTextConfig.from_pretrained(source / name)).half().save_pretrained(folder / name)
        tokenizer = name.replace("text_encoder", "tokenizer")
        CLIPTokenizer(str(CONFIGS / "clip_tokenizer" / "vocab.json"), str(CONFIGS / "clip_tokenizer" / "merges.txt"),
                      pad_token="!" if name.endswith("2") else "<|endoftext|>").save_pretrained(folder / tokenizer)
    shutil.copytree(source / "scheduler", folder / "scheduler")
    shutil.copy(source / "model_index.json", folder / "model_index.json")
    if family == "sd15":  # a second, distinct ControlNet file (both are held in memory at once)
        shutil.copytree(folder / "controlnet-a", folder / "controlnet-b")
    (folder / "done").write_text("ok")
    return folder


def run_case(name: str, steps: int) -> dict:
    """In this (fresh) process: load, generate, report peak RSS."""
    import numpy as np

    import kekong
    from kekong.io import save_image

    family, count, size, _, _ = CASES[name]
    folder = ROOT / family
    control = str(save_image(np.zeros((size, size, 3), np.uint8), ROOT / f"control-{size}.png"))
    units = [{"module": "none", "image": control, "model": str(folder / f"controlnet-{c}")} for c in "ab"[:count]]
    start = time.perf_counter()
    kekong.generate(prompt="a lighthouse at dusk", model=str(folder), controls=units, steps=steps, width=size,
                    height=size, seed=1, sampler="Euler")
    seconds = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"case": name, "size": size, "controlnets": count, "weights": CASES[name][3], "offload": CASES[name][4],
            "steps": steps,
            "peak_rss_gib": round(peak_gib, 2), "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--cases", default="sd15-auto,sd15-fp16,sdxl-auto,sdxl-offload")
    parser.add_argument("--build", help=argparse.SUPPRESS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(args.build)
        return
    if args.one:
        print(json.dumps(run_case(args.one, args.steps)))
        return
    rows = []
    for name in args.cases.split(","):
        family = CASES[name][0]
        subprocess.run([sys.executable, __file__, "--build", family], check=True)  # its own process: its memory
        env = {**os.environ, "KEKONG_WEIGHTS": CASES[name][3], "KEKONG_OFFLOAD": CASES[name][4],
               "KEKONG_OFFLOAD_DIR": str(ROOT / "offload"), "KEKONG_MODEL_CACHE_GB": "64"}
        done = subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(args.steps)], env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            rows.append({"case": name, "error": (done.stderr.strip().splitlines() or ["killed"])[-1]})
        else:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| case | size | ControlNets | KEKONG_WEIGHTS | KEKONG_OFFLOAD | steps | peak RSS (GiB) | time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        if "error" in row:
            print(f"| {row['case']} | failed: {row['error']} |")
        else:
            print(f"| {row['case']} | {row['size']}² | {row['controlnets']} | {row['weights']} | {row['offload']} | "
                  f"{row['steps']} | "
                  f"{row['peak_rss_gib']} | {row['seconds']} |")


if __name__ == "__main__":
    main()
