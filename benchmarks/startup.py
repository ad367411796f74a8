"""CLI start-up: seconds from `kekong generate` starting (the process's start time, read from
/proc) to its first denoising step, with the shipped kekong-shapes model and a sketch, and what
the imports take on the way (`python -X importtime`, summed per top-level package).

    python benchmarks/startup.py              # 3 runs, median, plus the import breakdown
    python benchmarks/startup.py --runs 1 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# Runs `kekong generate` in this process and prints, at the first denoising step, the seconds
# since the process started (its start time in /proc/self/stat, against the boot clock).
LAUNCHER = r"""
import os, sys, time
def since_start():
    ticks = os.sysconf("SC_CLK_TCK")
    start = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]) / ticks
    return time.clock_gettime(time.CLOCK_BOOTTIME) - start
import kekong.cli
import kekong.generation.loop as loop
original = loop._denoise
def timed(*args, **kwargs):
    print(f"FIRST_STEP {since_start():.3f}", file=sys.stderr, flush=True)
    return original(*args, **kwargs)
loop._denoise = timed
sys.argv = ["kekong", *sys.argv[1:]]
try:
    kekong.cli.main()
except SystemExit:
    pass
print(f"DONE {since_start():.3f}", file=sys.stderr, flush=True)
"""


def sketch(folder: Path) -> Path:
    from kekong.demo import hand_sketch
    from kekong.io import save_image

    return save_image(hand_sketch(), folder / "sketch.png")


def command(folder: Path, image: Path, extra: list[str]) -> list[str]:
    return ["generate", "a red star on a light blue background", "--control", f"scribble_sketch:{image}",
            "-W", "64", "-H", "64", "--steps", "20", "--cfg", "2", "--seed", "1", "-o", str(folder / "out.png"),
            *extra]


def one_run(folder: Path, image: Path, extra: list[str], importtime: bool = False) -> dict:
    flags = ["-X", "importtime"] if importtime else []
    done = subprocess.run([sys.executable, *flags, "-c", LAUNCHER, *command(folder, image, extra)],
                          capture_output=True, text=True, check=False, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    marks = {}
    for line in done.stderr.splitlines():
        key, _, value = line.partition(" ")
        if key in ("FIRST_STEP", "DONE"):
            marks[key] = float(value)
    if "FIRST_STEP" not in marks:
        raise SystemExit(f"no first step: {done.stderr[-2000:]}")
    return {"first_step_s": marks["FIRST_STEP"], "total_s": marks.get("DONE"), "stderr": done.stderr}


def import_breakdown(stderr: str, top: int = 12) -> list[tuple[str, float]]:
    """Self time per top-level package (seconds) from `-X importtime` lines."""
    per: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        try:
            self_us = int(parts[0].split(":")[1])
        except ValueError:
            continue
        name = parts[2].strip().split(".")[0]
        per[name] = per.get(name, 0.0) + self_us / 1e6
    return sorted(per.items(), key=lambda kv: -kv[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("extra", nargs="*", help="more `kekong generate` flags, e.g. --no-server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image = sketch(folder)
        one_run(folder, image, args.extra)  # warm the page cache: the runs measure start-up, not the disk
        runs = [one_run(folder, image, args.extra) for _ in range(args.runs)]
        imports = import_breakdown(one_run(folder, image, args.extra, importtime=True)["stderr"])
    first = statistics.median(r["first_step_s"] for r in runs)
    total = statistics.median(r["total_s"] for r in runs if r["total_s"] is not None)
    result = {"first_step_s": first, "total_s": total, "runs": [r["first_step_s"] for r in runs],
              "imports_s": dict(imports)}
    if args.json:
        print(json.dumps(result))
        return
    print(f"start-up to the first denoising step: {first:.2f} s (median of {args.runs}: "
          f"{', '.join(f'{r:.2f}' for r in result['runs'])}); whole command {total:.2f} s; goal ≤ 3 s "
          f"{'✓' if first <= 3 else '✗'}")
    print("| package | import self time (s) |\n|---|---:|")
    for name, seconds in imports:
        print(f"| {name} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
