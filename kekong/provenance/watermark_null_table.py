"""The watermark reader's null distribution, as measured: written by benchmarks/watermark_null.py
(`--write`); do not edit by hand. 3000 unmarked images (seed 22: photos, textures and synthetic
patterns, cropped, resized, flipped, turned, greyed, noised, JPEG), 2026-12-04, x86_64, median read
0.133 s.

SURVIVAL[i] is how many of the COUNT images reached a pilot peak (Reading.confidence, in standard
deviations) of at least GRID[i]; TAIL is a generalised Pareto fit to the peaks above its threshold
(the top 5%), used beyond the measured range."""

COUNT = 3000
FOUND = 0  # of COUNT read as marked
GRID = [3.0 + 0.25 * i for i in range(45)]
SURVIVAL = [2996, 2986, 2969, 2871, 2609, 1891, 1029, 491, 247, 163, 100, 69, 50, 35, 23, 15, 9, 5, 3, 2, 2,
    2, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
TAIL = {'threshold': 5.297, 'above': 0.05, 'shape': 0.038, 'scale': 0.5939, 'exceedances': 150}
# the same for the best pilot peak of the mirrored/turned/stretched folds (decoded from PILOT_BAR)
GATED_SURVIVAL = [2999, 2999, 2995, 2987, 2959, 2853, 2635, 2006, 1100, 553, 311, 198, 143, 108, 72, 47, 32,
    22, 14, 13, 9, 8, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
PERCENTILES = {"median": 4.359, "p99": 6.367, "p99.9": 7.383, "max": 9.444}
