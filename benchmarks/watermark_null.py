"""The watermark reader's null distribution: how high its pilot-peak statistic goes on images that
carry no kekong mark, measured on ≥ 3000 of them, and the tail fitted to it. verify turns a
reading's pattern match into a false-positive probability with the table this writes
(kekong/provenance/watermark_null_table.py).

Unmarked images: the photos scikit-image and scikit-learn ship, scikit-image's textures (brick,
grass, gravel) and synthetic patterns drawn afresh for every image (checkerboards, stripes and
gratings at any period and angle, halftone dots, a random tile repeated at any period — the
hardest case: a periodic image folds onto itself as a mark does —, noise, flat colour,
gradients, line art), each variant cropped, resized (short side 256–768, long side ≤ 1024),
sometimes flipped, turned, greyed, noised and re-encoded as JPEG 30–95.

Two statistics per image: `plain`, the reading's confidence (the best pilot peak, in standard
deviations, over the plain period guesses: what verify reports), and `gated`, the best pilot peak
among the mirrored, turned and stretched folds, which are decoded only at watermark.PILOT_BAR.

    nice -n 19 python benchmarks/watermark_null.py            # 3000 images (617 s on the shared 2-core VM)
    python benchmarks/watermark_null.py --count 200           # a quick look
    nice -n 19 python benchmarks/watermark_null.py --write    # also rewrite the table verify uses
    python benchmarks/watermark_null.py --write --resume      # go on from a cut run's --json
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from kekong.provenance import watermark

PHOTOS = ("astronaut", "camera", "cat", "cell", "clock", "coffee", "coins", "colorwheel", "hubble_deep_field",
          "immunohistochemistry", "logo", "moon", "retina", "rocket", "shepp_logan_phantom", "page", "text",
          "horse", "binary_blobs", "checkerboard")
TEXTURES = ("brick", "grass", "gravel")
TABLE = Path(__file__).resolve().parents[1] / "kekong" / "provenance" / "watermark_null_table.py"
GRID = np.round(np.arange(3.0, 14.01, 0.25), 2)  # z values the survival table is kept at


def rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        image = image.astype(np.float64)
        image = (255 * (image.astype(np.float64) - image.min()) / (np.ptp(image) + 1e-12)).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.shape[-1] == 4:  # composite on white
        alpha = image[..., 3:] / 255.0
        image = (image[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(image[..., :3])


def photos() -> dict[str, np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    # binary_blobs draws afresh unless seeded: seeded, every run (and --resume) sees the same images
    seeded = {"binary_blobs": lambda: data.binary_blobs(rng=22)}
    found = {name: rgb(seeded.get(name, getattr(data, name))()) for name in PHOTOS}
    for name, image in zip(("china", "flower"), load_sample_images().images, strict=True):
        found[name] = rgb(image)
    return found


def textures() -> dict[str, np.ndarray]:
    from skimage import data

    return {name: rgb(getattr(data, name)()) for name in TEXTURES}


# ---------------------------------------------------------------- synthetic patterns (drawn per image)


def _grating(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = np.mgrid[:size, :size].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(3, 300)
    wave = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
    if rng.random() < 0.5:
        wave = np.sign(wave)  # stripes
    return 128 + rng.uniform(20, 120) * wave


def _checker(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    square = int(rng.integers(2, 160))
    return np.where((y // square + x // square) % 2, rng.uniform(150, 255), rng.uniform(0, 100))


def _dots(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = np.mgrid[:size, :size].astype(np.float32)
    period = rng.uniform(4, 40)
    shade = cv2.GaussianBlur(rng.uniform(0, 1, (size, size)).astype(np.float32), (0, 0), 40)
    shade = (shade - shade.min()) / (np.ptp(shade) + 1e-6)
    cell = np.hypot((x % period) / period - 0.5, (y % period) / period - 0.5)
    return np.where(cell < 0.5 * np.sqrt(shade), 0.0, 255.0)


def _tiled(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random tile repeated: periodic at any period (128 px — kekong's own — included)."""
    period = int(rng.choice([128, int(rng.integers(24, 320))]))
    cell = int(rng.choice([1, 2, 4, 8]))
    small = rng.uniform(0, 255, (-(-period // cell), -(-period // cell)))
    tile = np.kron(small, np.ones((cell, cell)))[:period, :period]
    reps = -(-size // period)
    return np.tile(tile, (reps, reps))[:size, :size]


def _noise(rng: np.random.Generator, size: int) -> np.ndarray:
    white = rng.normal(0, 1, (size, size)).astype(np.float32)
    blur = float(rng.choice([0.0, 1.0, 3.0, 10.0]))
    field = cv2.GaussianBlur(white, (0, 0), blur) if blur else white
    return 128 + 60 * field / (field.std() + 1e-6)


def _flat(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.full((size, size), rng.uniform(0, 255))


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = np.mgrid[:size, :size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * np.pi)
    return 255 * np.clip(0.5 + (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle), 0, 1)


def _line_art(rng: np.random.Generator, size: int) -> np.ndarray:
    canvas = np.full((size, size), 255, np.uint8)
    for _ in range(int(rng.integers(5, 40))):
        points = rng.integers(0, size, (int(rng.integers(2, 8)), 1, 2)).astype(np.int32)
        cv2.polylines(canvas, [points], bool(rng.random() < 0.3), 0, int(rng.integers(1, 6)), cv2.LINE_AA)
    return canvas


SYNTHETIC: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "grating": _grating, "checker": _checker, "dots": _dots, "tiled": _tiled, "noise": _noise,
    "flat": _flat, "gradient": _gradient, "line art": _line_art}


def synthetic(kind: str, rng: np.random.Generator) -> np.ndarray:
    grey = SYNTHETIC[kind](rng, 1024)
    if rng.random() < 0.5:  # colour: each channel its own gain and offset
        gains, offsets = rng.uniform(0.3, 1.0, 3), rng.uniform(0, 80, 3)
        image = grey[..., None] * gains + offsets
    else:
        image = np.stack([grey] * 3, axis=-1)
    return np.clip(image, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- variants


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    stream = io.BytesIO()
    Image.fromarray(image).save(stream, "JPEG", quality=quality)
    return np.asarray(Image.open(stream).convert("RGB"))


def variant(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """A random crop, resize (short side 256–768, aspect 0.6–1.6, long side ≤ 1024) and re-encode of
    `image`."""
    edits = []
    h, w = image.shape[:2]
    keep = rng.uniform(0.4, 1.0)
    ch, cw = max(int(h * keep * rng.uniform(0.8, 1.0)), 32), max(int(w * keep * rng.uniform(0.8, 1.0)), 32)
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    image = image[y:y + ch, x:x + cw]
    short = int(rng.integers(256, 769))
    aspect = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
    long = min(round(short * max(aspect, 1 / aspect)), 1024)
    out_h, out_w = (short, long) if aspect >= 1 else (long, short)
    method = [Image.BICUBIC, Image.LANCZOS, Image.BILINEAR, Image.NEAREST][int(rng.integers(0, 4))]
    image = np.asarray(Image.fromarray(image).resize((out_w, out_h), method))
    edits.append(f"crop {keep:.2f}, resize {out_w}x{out_h}")
    if rng.random() < 0.3:
        image, _ = np.ascontiguousarray(image[:, ::-1]), edits.append("flip")
    if rng.random() < 0.15:
        degrees = float(rng.uniform(-6, 6))
        image = np.asarray(Image.fromarray(image).rotate(degrees, Image.BICUBIC))
        edits.append(f"rotate {degrees:.1f}")
    if rng.random() < 0.1:
        grey = np.asarray(Image.fromarray(image).convert("L"))
        image, _ = np.stack([grey] * 3, axis=-1), edits.append("grey")
    if rng.random() < 0.15:
        sigma = float(rng.uniform(1, 8))
        image = np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).round().astype(np.uint8)
        edits.append(f"noise {sigma:.1f}")
    if rng.random() < 0.5:
        quality = int(rng.integers(30, 96))
        image, _ = jpeg(image, quality), edits.append(f"JPEG {quality}")
    return np.ascontiguousarray(image), edits


# ---------------------------------------------------------------- measuring


def measure(image: np.ndarray) -> dict:
    """The reading of an unmarked image, with the best pilot peak among the gated folds."""
    gated: list[float] = []
    real = watermark._best_orientations

    def recording(folded, skip_plain):
        found = real(folded, skip_plain)
        gated.extend(z for _, z in found)
        return found

    watermark._best_orientations = recording
    try:
        reading = watermark.read(image)
    finally:
        watermark._best_orientations = real
    return {"plain": round(reading.confidence, 3), "gated": round(max(gated, default=0.0), 3),
            "found": reading.found}


def draw(count: int, seed: int) -> Iterator[tuple[str, str, np.ndarray, list[str]]]:
    """(category, base, image, edits) × count, as a generator would: deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    bases = {"photo": photos(), "texture": textures()}
    for _ in range(count):
        roll = rng.random()
        if roll < 0.5:
            category, name = "photo", str(rng.choice(list(bases["photo"])))
            base = bases["photo"][name]
        elif roll < 0.65:
            category, name = "texture", str(rng.choice(list(bases["texture"])))
            base = bases["texture"][name]
        else:
            category, name = "synthetic", str(rng.choice(list(SYNTHETIC)))
            base = synthetic(name, rng)
        image, edits = variant(base, rng)
        yield category, name, image, edits


def survival(values: np.ndarray) -> list[int]:
    """How many of `values` reach each z on GRID."""
    return [int(np.sum(values >= z)) for z in GRID]


def fit_tail(values: np.ndarray, quantile: float = 0.95) -> dict:
    """A generalised Pareto tail over the `quantile` threshold (peaks over threshold)."""
    from scipy.stats import genpareto

    threshold = float(np.quantile(values, quantile))
    excess = values[values > threshold] - threshold
    shape, _, scale = genpareto.fit(excess, floc=0)
    return {"threshold": round(threshold, 3), "above": round(float(excess.size / values.size), 5),
            "shape": round(float(shape), 4), "scale": round(float(scale), 4), "exceedances": int(excess.size)}


def summary(rows: list[dict]) -> dict:
    plain = np.array([r["plain"] for r in rows])
    gated = np.array([r["gated"] for r in rows])
    per_category = {}
    for category in sorted({r["category"] for r in rows}):
        values = np.array([r["plain"] for r in rows if r["category"] == category])
        per_category[category] = {"count": int(values.size), "median": round(float(np.median(values)), 2),
                                  "p99": round(float(np.quantile(values, 0.99)), 2),
                                  "max": round(float(values.max()), 2)}
    top = sorted(rows, key=lambda r: -r["plain"])[:8]
    return {
        "count": len(rows), "found": int(sum(r["found"] for r in rows)),
        "plain": {"median": round(float(np.median(plain)), 3), "p99": round(float(np.quantile(plain, 0.99)), 3),
                  "p999": round(float(np.quantile(plain, 0.999)), 3), "max": round(float(plain.max()), 3),
                  "survival": survival(plain), "tail": fit_tail(plain)},
        "gated": {"median": round(float(np.median(gated)), 3), "max": round(float(gated.max()), 3),
                  "at_bar": int(np.sum(gated >= watermark.PILOT_BAR)), "survival": survival(gated)},
        "per_category": per_category,
        "highest": [{k: r[k] for k in ("category", "base", "shape", "edits", "plain")} for r in top],
    }


def _listed(name: str, values: list[int]) -> str:
    import textwrap

    return textwrap.fill(f"{name} = {values}", 110, subsequent_indent="    ")


def write_table(result: dict, path: Path = TABLE) -> None:
    plain = result["plain"]
    import textwrap

    origin = textwrap.fill(f"(`--write`); do not edit by hand. {result['count']} unmarked images ({result['source']}), "
                           f"{result['date']}, {result['machine']}, median read {result['median_read_s']} s.", 100)
    text = f'''"""The watermark reader's null distribution, as measured: written by benchmarks/watermark_null.py
{origin}

SURVIVAL[i] is how many of the COUNT images reached a pilot peak (Reading.confidence, in standard
deviations) of at least GRID[i]; TAIL is a generalised Pareto fit to the peaks above its threshold
(the top {100 * plain["tail"]["above"]:.0f}%), used beyond the measured range."""

COUNT = {result["count"]}
FOUND = {result["found"]}  # of COUNT read as marked
GRID = [{GRID[0]} + {GRID[1] - GRID[0]} * i for i in range({GRID.size})]
{_listed("SURVIVAL", plain["survival"])}
TAIL = {plain["tail"]}
# the same for the best pilot peak of the mirrored/turned/stretched folds (decoded from PILOT_BAR)
{_listed("GATED_SURVIVAL", result["gated"]["survival"])}
PERCENTILES = {{"median": {plain["median"]}, "p99": {plain["p99"]}, "p99.9": {plain["p999"]}, "max": {plain["max"]}}}
'''
    path.write_text(text)


def finished(rows: list[dict], seconds: list[float], seed: int) -> dict:
    """The summary of `rows`, with where and when they were measured."""
    result = summary(rows)
    result.update(date=datetime.date.today().isoformat(), machine=f"{platform.machine()}, {platform.processor() or ''}"
                  .strip(", "), seed=seed, median_read_s=round(statistics.median(seconds), 3),
                  source=f"seed {seed}: photos, textures and synthetic patterns, cropped, resized, "
                         "flipped, turned, greyed, noised, JPEG")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--json", type=Path, default=Path("/tmp/watermark_null.json"), help="every image's numbers")
    parser.add_argument("--write", action="store_true",
                        help=f"rewrite {TABLE.name} from this run (also every 500 images once 1000 are read)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows already in --json (same --seed) and read only the images after them")
    parser.add_argument("--from-json", type=Path, help="summarise (and --write) the rows of an earlier run's --json")
    args = parser.parse_args()
    started = time.perf_counter()
    rows, seconds = [], []
    if args.from_json or (args.resume and args.json.exists()):
        saved = json.loads((args.from_json or args.json).read_text())
        if args.resume and saved.get("seed", args.seed) != args.seed:
            raise SystemExit(f"{args.json} holds rows of seed {saved['seed']}, not {args.seed}")
        rows = saved["rows"][:args.count]
        seconds = [row.get("seconds", float("nan")) for row in rows]
    done = len(rows)
    for index, (category, name, image, edits) in enumerate(draw(0 if args.from_json else args.count, args.seed)):
        if index < done:  # drawn again only to keep the generator's sequence (the rows are saved)
            continue
        begin = time.perf_counter()
        numbers = measure(image)
        seconds.append(time.perf_counter() - begin)
        rows.append({"category": category, "base": name, "shape": list(image.shape[:2]), "edits": edits,
                     "seconds": round(seconds[-1], 3), **numbers})
        if (index + 1) % 100 == 0:  # progress, and every image's numbers so far (a long run can be cut short)
            print(f"{index + 1} images, {time.perf_counter() - started:.0f} s", flush=True)
            args.json.write_text(json.dumps({"seed": args.seed, "rows": rows}))
        if args.write and (index + 1) % 500 == 0 and index + 1 >= 1000 and index + 1 < args.count:
            write_table(finished(rows, seconds, args.seed))  # a cut run still leaves a usable table
            print(f"wrote {TABLE} ({index + 1} images so far)", flush=True)
    result = finished(rows, seconds, args.seed)
    if not args.from_json:
        args.json.write_text(json.dumps({"seed": args.seed, "summary": result, "rows": rows}, indent=1))
    print(json.dumps(result, indent=1))
    if args.write:
        write_table(result)
        print(f"wrote {TABLE}")
    print(f"(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
