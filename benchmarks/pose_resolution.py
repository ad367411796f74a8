"""At what size can a latent model draw the figures? (issue 24 item 2: 64 vs 96 vs 128 px)

The pose bench scores a generated figure against the truth (mask IoU, 12 limbs within 2 px,
colours). A latent diffusion model cannot draw detail finer than its latent grid, so the best any
model of a given latent size can score is bounded by the truth passed through that grid: each
held-out target is reduced to the latent size (area average) and enlarged back (bicubic), and the
bench's own scoring runs on the result. An ideal VAE does no better; a trained one does a little
worse (the shipped 4× VAE at 64 px: IoU 0.78–0.81 vs 0.777 here). Also printed: the forearm's
width in latent pixels (median over the set), against the issue's "≥ 2 latent pixels".

    .venv/bin/python benchmarks/pose_resolution.py [--count 150]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np


def ceiling(size: int, factor: int, count: int) -> dict[str, float]:
    from kekong.train.figures import random_sample
    from kekong.train.pose_bench import score, summarise

    rng = np.random.default_rng(5)
    scores, latent = [], size // factor
    for _ in range(count):
        sample = random_sample(rng, size)
        small = cv2.resize(sample.target, (latent, latent), interpolation=cv2.INTER_AREA)
        scores.append(score(cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC), sample))
    return summarise(scores)


def forearm_latent_px(size: int, factor: int, count: int) -> float:
    """Median forearm width (the drawing's 0.06 × body height) in latent pixels."""
    from kekong.train.figures import random_sample

    rng = np.random.default_rng(5)
    widths = [0.06 * figure.skeleton.height / factor
              for _ in range(count) for figure in random_sample(rng, size).figures]
    return float(np.median(widths))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=150, help="held-out figures per row")
    args = parser.parse_args()
    print(f"## Pose model: the latent-grid ceiling by image size (`benchmarks/pose_resolution.py`) — "
          f"{time.strftime('%Y-%m-%d')}\n")
    print(f"{args.count} figures per row (1–3 people, the training distribution). UNet cost grows with the latent "
          "area (16² = 1×).\n")
    print("| image px | VAE factor | latent | UNet cost | forearm (latent px) | IoU | limbs | colour |")
    print("|---|---|---|---|---|---|---|---|")
    for size in (64, 96, 128):
        for factor in (2, 4, 8):
            m = ceiling(size, factor, args.count)
            latent = size // factor
            print(f"| {size} | ×{factor} | {latent}² | {latent ** 2 / 256:.2f}× | "
                  f"{forearm_latent_px(size, factor, args.count):.2f} | {m['iou']:.3f} | {m['limbs']:.3f} | "
                  f"{m['colour_accuracy']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
