"""What the fidelity score costs per image and unit (issue 25: "cost reported"): `kekong.fidelity.score`
on a 512² output for each scoreable detector that runs offline here, median of `--repeat` runs,
after one warm-up (models and graphs loaded). The output is re-detected once; `score` also detects
the control photo, so the per-image cost in generation (which reuses the unit's map) is about half.

    .venv/bin/python benchmarks/fidelity_cost.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from skimage import data

from kekong.errors import KekongError
from kekong.fidelity import score

MODULES = ("canny", "lineart_standard", "softedge_pidinet", "scribble_hed", "mlsd", "openpose", "depth_midas",
           "normal_bae", "seg_ofade20k")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    photo = data.astronaut()
    output = photo[:, ::-1].copy()  # another image of the same size: a mirrored astronaut
    print("| detector | metric | score ms (median) | value |\n|---|---|---|---|")
    for module in MODULES:
        try:
            score(output, module, photo)  # warm-up: weights, graphs
        except KekongError as error:
            print(f"| {module} | — | not run: {str(error).splitlines()[0][:90]} | |")
            continue
        times, found = [], None
        for _ in range(args.repeat):
            began = time.perf_counter()
            found = score(output, module, photo)
            times.append((time.perf_counter() - began) * 1000)
        value = "" if found.value is None else f"{found.value:.3f}"
        print(f"| {module} | {found.metric} | {statistics.median(times):.0f} | {value} |")


if __name__ == "__main__":
    main()
