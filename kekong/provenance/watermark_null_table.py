"""The watermark reader's null distribution, as measured: written by benchmarks/watermark_null.py
(`--write`); do not edit by hand.

Not measured yet: the 3000-image run did not finish on the shared machine of 2026-12-03 (issue 22
item 6). With COUNT below watermark_null.MIN_COUNT verify reports no calibrated numbers.

SURVIVAL[i] is how many of the COUNT images reached a pilot peak (Reading.confidence, in standard
deviations) of at least GRID[i]; TAIL is a generalised Pareto fit to the peaks above its threshold,
used beyond the measured range."""

COUNT = 0
FOUND = 0  # of COUNT read as marked
GRID = [3.0 + 0.25 * i for i in range(45)]
SURVIVAL = [0] * 45
TAIL = {"threshold": 0.0, "above": 0.0, "shape": 0.0, "scale": 1.0, "exceedances": 0}
# the same for the best pilot peak of the mirrored/turned/stretched folds (decoded from PILOT_BAR)
GATED_SURVIVAL = [0] * 45
PERCENTILES = {"median": 0.0, "p99": 0.0, "p99.9": 0.0, "max": 0.0}
