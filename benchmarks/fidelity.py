"""Does the fidelity score measure something? On the shipped kekong-shapes model (issue 25 item 2):

1. ROC AUC of the score separating images generated with the ControlNet (unit weight 1) from
   images of the same prompts and seeds without it (weight 0) — goal ≥ 0.95;
2. across a unit-weight sweep 0 → 1.5, Spearman's rank correlation between the mean score and the
   shapes bench's IoU (the shape followed, measured against the ground truth) — goal ≥ 0.8.

    .venv/bin/python benchmarks/fidelity.py [--count 200] [--sweep-count 30]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def auc(positives: list[float], negatives: list[float]) -> float:
    """P(a positive scores above a negative), ties half (Mann–Whitney)."""
    pos, neg = np.asarray(positives)[:, None], np.asarray(negatives)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200, help="held-out outlines for the AUC")
    parser.add_argument("--sweep-count", type=int, default=30, help="outlines per weight in the sweep")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    import kekong
    from kekong.fidelity import score_generated
    from kekong.io import save_image
    from kekong.train.bench import HELD_OUT_SEED, score
    from kekong.train.shapes import random_sample

    rng = np.random.default_rng(HELD_OUT_SEED)
    samples = [random_sample(rng, 64) for _ in range(max(args.count, args.sweep_count))]
    folder = Path(tempfile.mkdtemp(prefix="kekong-fidelity-"))
    start = time.perf_counter()

    done = [0]

    def run(index: int, weight: float) -> tuple[float, float]:
        done[0] += 1
        if done[0] % 20 == 0:  # a long run: say how far it is
            print(f"{done[0]} generations, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        sample = samples[index]
        path = folder / f"{index}.png"
        if not path.exists():
            save_image(sample.outline, path)
        [made] = kekong.generate(prompt=sample.prompt, width=64, height=64, steps=args.steps, seed=index,
                                 controls=[{"module": "none", "image": str(path), "weight": weight}])
        return score_generated(made)[0]["value"], score(made.image, sample)["iou"]

    with_cn = [run(i, 1.0)[0] for i in range(args.count)]
    without = [run(i, 0.0)[0] for i in range(args.count)]
    weights = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
    sweep = []
    for weight in weights:
        pairs = [run(i, weight) for i in range(args.sweep_count)]
        sweep.append((weight, float(np.mean([p[0] for p in pairs])), float(np.mean([p[1] for p in pairs]))))
    elapsed = time.perf_counter() - start

    print(f"## Fidelity score: does it measure something? (`benchmarks/fidelity.py`) — {time.strftime('%Y-%m-%d')}")
    print(f"\nMachine: {platform.processor() or platform.machine()}, {platform.system()}; kekong-shapes, 64 px, "
          f"{args.steps} steps, CFG 2 (the model's recommendation); {elapsed:.0f} s in all.\n")
    print(f"- With vs without the ControlNet, {args.count} held-out outlines each: edge F1 mean "
          f"{np.mean(with_cn):.3f} vs {np.mean(without):.3f}; **ROC AUC {auc(with_cn, without):.3f}** (goal ≥ 0.95)")
    rho = spearman([s[1] for s in sweep], [s[2] for s in sweep])
    print(f"- Unit-weight sweep, {args.sweep_count} outlines per weight: **Spearman(score, IoU) = {rho:.3f}** "
          "(goal ≥ 0.8)\n")
    print("| weight | mean edge F1 | mean shape IoU |\n|---|---|---|")
    for weight, f1, iou in sweep:
        print(f"| {weight:g} | {f1:.3f} | {iou:.3f} |")


if __name__ == "__main__":
    main()
