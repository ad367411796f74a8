"""ms/image per detector at 512×512 on the astronaut photo (run pinned to one core by `make bench`).

Learned detectors run with random weights of the real architecture (cost does not depend on
weight values). Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from skimage import data

from kekong.detect import list_detectors, run
from kekong.detect.learned.mlsd import MLSDLarge
from kekong.detect.learned.networks import AnimeLineartUnet, ControlNetHED, LineartGenerator
from kekong.detect.learned.normalbae import NormalBae
from kekong.detect.learned.pidinet import PiDiNet

GOALS_MS = {"canny": 5, "lineart_standard": 30, "openpose": 60, "openpose_full": 100}
RANDOM_WEIGHTS = {"ControlNetHED.pth": ControlNetHED, "sk_model.pth": LineartGenerator,
                  "sk_model2.pth": LineartGenerator, "netG.pth": AnimeLineartUnet, "table5_pidinet.pth": PiDiNet,
                  "mlsd_large_512_fp32.pth": MLSDLarge, "scannet.pt": NormalBae}


def time_ms(fn, repeats: int) -> float:
    fn()  # warm up: lazy model loading, caches
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp()) / "annotators"
    folder.mkdir(parents=True)
    for filename, network in RANDOM_WEIGHTS.items():
        torch.save(network().state_dict(), folder / filename)
    os.environ["KEKONG_MODELS_DIR"] = str(folder.parent)

    image = data.astronaut()
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[100:300, 100:300] = 255
    cpu = platform.processor() or platform.machine()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"# detectors at 512x512 — {date.today()} — {cpu}, {affinity} core(s), "
          f"python {sys.version.split()[0]}, torch {torch.__version__}\n")
    print("| detector | ms/image (median) | goal | weights |")
    print("|---|---:|---:|---|")
    only = set(sys.argv[1:])  # optional: detector names to time
    for detector in list_detectors():
        if only and detector.name not in only:
            continue
        if detector.name.startswith("depth") or detector.name == "normal_from_depth":
            continue  # transformers models: no real-size weights here
        repeats = 3 if detector.needs_weights else 10
        extra = {"mask": mask} if detector.takes_mask else {}
        ms = time_ms(lambda d=detector, e=extra: run(d.name, image, **e), repeats)
        goal = GOALS_MS.get(detector.name)
        verdict = "" if goal is None else f"≤ {goal} {'✓' if ms <= goal else '✗'}"
        weights = "random, real size" if detector.needs_weights else "none"
        print(f"| {detector.name} | {ms:.1f} | {verdict} | {weights} |", flush=True)


if __name__ == "__main__":
    main()
