"""OpenPose speed against mediapipe alone (issue 28 item 5), side by side in one process, one core.

Goal (BENCHMARKS.md): a kekong OpenPose detector costs at most mediapipe's own model time + 15%, where
mediapipe's own time is what a plain mediapipe user pays for the same parts on the same picture: one
`Pose.process` for `openpose`; `Pose` + `Hands` + `FaceMesh` for `openpose_full`. Both sides get the
same pixels (the photo at the processor resolution, short side 512, as `kekong.detect.run` makes it)
and the same graphs (kekong's cached solutions, called directly for the mediapipe side). The rounds
alternate (A-B-C…, then reversed) so a loaded machine's drift hits every side alike; medians.

The kekong time is split into the model calls it makes (the multi-person search's second pose call on
the masked picture, the hand model again on a crop around each wrist) and its own work around them
(resizing, masking, drawing, JSON).

    taskset -c 0 .venv/bin/python benchmarks/openpose.py [--photo PATH ...] [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from kekong.detect import mp_models, run
from kekong.detect.resolution import resize_short_side

GOAL = 1.15
DETECTORS = {  # row → (kekong detector, its parameters, the mediapipe solutions a plain user calls for the same parts)
    "openpose": ("openpose", {}, ("pose",)),
    "openpose, max_people=1 (no second look)": ("openpose", {"max_people": 1}, ("pose",)),
    "openpose_full": ("openpose_full", {}, ("pose", "hands", "face_mesh")),
}
SOLUTIONS: dict[str, Callable[[], mp_models.Solution]] = {
    "pose": mp_models.pose, "hands": mp_models.hands, "face_mesh": mp_models.face_mesh}


class ModelClock:
    """Counts the time spent inside mediapipe graph calls (every `Solution.process`) while on."""

    def __init__(self) -> None:
        self.seconds, self.calls = 0.0, 0
        self._process = mp_models.Solution.process

        def timed(solution: mp_models.Solution, image: np.ndarray):
            began = time.perf_counter()
            try:
                return self._process(solution, image)
            finally:
                self.seconds += time.perf_counter() - began
                self.calls += 1

        mp_models.Solution.process = timed  # type: ignore[method-assign]

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0


def photos(paths: list[str]) -> dict[str, np.ndarray]:
    found = {"astronaut (skimage)": data.astronaut()}
    for path in paths:
        image = cv2.imread(path)
        if image is None:
            raise SystemExit(f"cannot read {path}")
        found[Path(path).name] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", action="append", default=[], help="another photo (e.g. one with hands)")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    clock = ModelClock()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"# OpenPose vs mediapipe alone — {date.today()} — {platform.processor() or platform.machine()}, "
          f"{cores} core(s), load {os.getloadavg()[0]:.1f}, repeat {args.repeat}\n")
    print("| photo | detector | mediapipe alone ms | kekong ms | kekong ÷ mediapipe (goal ≤ 1.15) | "
          "model calls kekong makes: n, ms | kekong's own work ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, photo in photos(args.photo).items():
        work, _ = resize_short_side(photo, 512, pad=False)
        work = np.ascontiguousarray(work)
        sides: dict[str, Callable[[], object]] = {}
        for name, (detector, params, parts) in DETECTORS.items():
            graphs = [SOLUTIONS[part]()._solution for part in parts]  # the graphs kekong calls, unwrapped
            sides[f"mediapipe {name}"] = lambda graphs=graphs, work=work: [graph.process(work) for graph in graphs]
            sides[f"kekong {name}"] = lambda detector=detector, params=params, photo=photo: run(detector, photo,
                                                                                               **params)
        times: dict[str, list[float]] = {side: [] for side in sides}
        models: dict[str, list[tuple[int, float]]] = {side: [] for side in sides}
        for side in sides.values():
            side()  # warm-up: graphs started, caches filled
        for r in range(args.repeat):
            for side in list(sides) if r % 2 == 0 else list(sides)[::-1]:
                clock.reset()
                began = time.perf_counter()
                sides[side]()
                times[side].append((time.perf_counter() - began) * 1000)
                models[side].append((clock.calls, clock.seconds * 1000))
        for name in DETECTORS:
            alone = statistics.median(times[f"mediapipe {name}"])
            ours = statistics.median(times[f"kekong {name}"])
            calls = statistics.median(n for n, _ in models[f"kekong {name}"])
            model_ms = statistics.median(ms for _, ms in models[f"kekong {name}"])
            own = statistics.median(t - ms for t, (_, ms) in zip(times[f"kekong {name}"], models[f"kekong {name}"],
                                                                   strict=True))
            verdict = "✓" if ours <= GOAL * alone else "✗"
            print(f"| {label} | {name} | {alone:.1f} | {ours:.1f} | {ours / alone:.2f} {verdict} | "
                  f"{calls:.0f}, {model_ms:.1f} | {own:.1f} |", flush=True)


if __name__ == "__main__":
    main()
