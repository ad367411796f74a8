"""The pose warp (`kekong warp`): speed at 512² on one core, and whether the people really move.

Speed: median wall and CPU time of warp_pose on the astronaut with one arm edited, single-threaded.
Accuracy: scikit-image's photos with people (astronaut, camera) and mirrored / rotated / scaled
variants; on each, random edits of 1–3 limbs (a limb turned about its joint by 12°–35°, kept inside
the frame and clear of the other keypoints); the pose is re-detected on the warped photo and
PCK@0.05 (of the long side) taken of the edited keypoints (against where they were asked to go) and
of the unedited ones (against where they were). A keypoint the re-detection misses counts as a miss.
Only keypoints mediapipe places stably are used (found within 0.04 of the long side on the photo
shifted 6 px either way diagonally): on these portraits it also guesses hidden elbows and wrists,
and a guess off the body moves background, which no re-detection follows. The "stable" column
says how many of the photo's keypoints that leaves; "detector noise" is the PCK of those on the photo
shifted 3 px (no warp at all): the ceiling a re-detection can reach.
The content check ("tracked"): the photo's patch at an edited keypoint, turned as its limb was, is looked
for (normalised cross-correlation) near where the keypoint was sent, on the warp and, as a control, on
the unwarped photo: whether the pixels moved there, apart from what a pose detector makes of them.
Prints Markdown for BENCHMARKS.md. Run it with `nice -n 19` on a shared machine. `--figure PATH` writes
README's before / after / mask picture instead (docs/warp-astronaut.jpg).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import date  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from skimage import data  # noqa: E402

from kekong.detect.openpose import PoseResult, detect_pose  # noqa: E402
from kekong.detect.openpose.keypoints import Person  # noqa: E402
from kekong.detect.openpose.warp import warp_pose  # noqa: E402

# limb → (joint it turns about, keypoints that follow); OpenPose body indices
LIMBS = {
    "right upper arm": (2, (3, 4)), "right forearm": (3, (4,)),
    "left upper arm": (5, (6, 7)), "left forearm": (6, (7,)),
    "right thigh": (8, (9, 10)), "right shin": (9, (10,)),
    "left thigh": (11, (12, 13)), "left shin": (12, (13,)),
}
ANGLES = (12.0, 35.0)  # degrees a limb turns, either way (well inside elbow/shoulder/knee/hip limits)
PCK_ALPHA = 0.05
TRIALS = 10  # edits per photo variant
SHIFT, STABLE = 6, 0.04  # the stability check: px shifted, keypoint tolerance (of the long side)
CLEAR = 0.05  # a moved keypoint keeps this far (of the long side) from the others
GOALS = {"edited": 0.85, "unedited": 0.95, "ms": 200.0}
TRACK = 12  # px: half the side of the patch `tracked` follows


def photos() -> dict[str, np.ndarray]:
    """The photos with people and their variants (mirrored, turned ±8°, scaled 0.85 / 1.15 about the centre)."""
    bases = {"astronaut": data.astronaut(), "camera": np.stack([data.camera()] * 3, axis=2)}
    out = {}
    for name, image in bases.items():
        h, w = image.shape[:2]
        out[name] = image
        out[f"{name} mirrored"] = np.ascontiguousarray(image[:, ::-1])
        for label, angle, scale in (("turned +8°", 8, 1.0), ("turned -8°", -8, 1.0), ("scaled 0.85", 0, 0.85),
                                    ("scaled 1.15", 0, 1.15)):
            matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
            out[f"{name} {label}"] = cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
    return out


def stable_keypoints(image: np.ndarray, pose: PoseResult) -> set[int]:
    """Keypoints found again within STABLE of the long side when the photo is shifted SHIFT px each way."""
    h, w = image.shape[:2]
    body = pose.people[0].body[:, :2] * (w, h)
    stable = {i for i in range(len(body)) if not np.isnan(body[i, 0])}
    for shift in (SHIFT, -SHIFT):
        moved = cv2.warpAffine(image, np.float32([[1, 0, shift], [0, 1, shift]]), (w, h),
                               borderMode=cv2.BORDER_REFLECT)
        again = detect_pose(moved, max_people=1)
        if not again.people:
            return set()
        found = again.people[0].body[:, :2] * (w, h) - shift
        stable = {i for i in stable if not np.isnan(found[i, 0])
                  and np.hypot(*(found[i] - body[i])) <= STABLE * max(h, w)}
    return stable


def edit(pose: PoseResult, usable: set[int], rng: np.random.Generator,
         ) -> tuple[PoseResult, dict[int, np.ndarray]] | None:
    """1–3 limbs of the first person turned about their joints; None when no limb can move. The whole
    chain below the joint turns (every keypoint the pose has: an unstable wrist left behind would bend the
    forearm instead of turning the arm); only the stable ones are scored, each with its limb's rotation."""
    body = pose.people[0].body.copy()
    present = np.array([i in usable for i in range(len(body))])
    found = ~np.isnan(body[:, 0])
    movable = [name for name, (joint, points) in LIMBS.items() if present[joint] and present[points[0]]]
    if not movable:
        return None
    aspect = np.array([pose.width, pose.height], np.float64)
    moved: dict[int, np.ndarray] = {}
    turned_any: set[int] = set()
    for name in rng.permutation(movable)[: rng.integers(1, 4)]:
        joint, points = LIMBS[str(name)]
        points = tuple(p for p in points if found[p])  # the whole chain the pose has
        if turned_any & {joint, *points}:
            continue  # a limb already moved by its parent keeps that edit alone
        for _ in range(20):
            angle = math.radians(rng.uniform(*ANGLES) * rng.choice((-1, 1)))
            centre = body[joint, :2] * aspect
            rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
            turned = (body[list(points), :2] * aspect - centre) @ rotation.T + centre
            others = body[[i for i in range(len(body)) if found[i] and i not in points], :2] * aspect
            clear = np.hypot(*(turned[:, None] - others[None]).transpose(2, 0, 1)).min() > CLEAR * aspect.max()
            if clear and np.all((turned > 0.03 * aspect) & (turned < 0.97 * aspect)):
                body[list(points), :2] = turned / aspect
                turned_any |= set(points)
                moved.update({p: rotation for p in points if present[p]})
                break
    if not moved:
        return None
    return PoseResult([Person(body=body)], pose.width, pose.height), moved


def tracked(photo: np.ndarray, picture: np.ndarray, source: np.ndarray, target: np.ndarray, rotation: np.ndarray,
            threshold: float) -> bool:
    """Whether the photo's content at `source`, turned as its limb was, is found in `picture` within
    `threshold` of `target` (normalised cross-correlation of a TRACK-px patch, searched within the threshold):
    where the warp put the pixels, whatever a pose detector makes of them."""
    h, w = photo.shape[:2]
    matrix = np.hstack([rotation, (target - rotation @ source)[:, None]]).astype(np.float32)
    turned = cv2.warpAffine(photo, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)  # source → target, turned
    r, reach = TRACK, int(threshold) + TRACK
    x, y = (int(np.rint(v)) for v in target)
    if min(x - reach, y - reach) < 0 or x + reach >= w or y + reach >= h:
        return False
    template = turned[y - r:y + r + 1, x - r:x + r + 1]
    window = picture[y - reach:y + reach + 1, x - reach:x + reach + 1]
    scores = cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED)
    dy, dx = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return bool(np.hypot(dx + r - reach, dy + r - reach) <= threshold)


def pck(found: np.ndarray, wanted: np.ndarray, indices: list[int], threshold: float) -> tuple[int, int]:
    """(hits, count) of keypoints `indices` within threshold px (found/wanted in pixels, NaN = missed)."""
    hits = 0
    for i in indices:
        if not np.isnan(found[i, 0]) and np.hypot(*(found[i] - wanted[i])) <= threshold:
            hits += 1
    return hits, len(indices)


def speed(image: np.ndarray, before: PoseResult, after: PoseResult, repeats: int = 15) -> tuple[float, float]:
    """(median wall ms, median CPU ms) of one rigid warp."""
    warp_pose(image, before, after)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        warp_pose(image, before, after)
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    rng = np.random.default_rng(26)
    rows, totals = [], {"edited": [0, 0], "unedited": [0, 0], "noise": [0, 0], "tracked": [0, 0], "unwarped": [0, 0]}
    speed_case = None
    for name, image in photos().items():
        h, w = image.shape[:2]
        scale = np.array([w, h], np.float64)
        before = detect_pose(image, max_people=1)
        if not before.people:
            rows.append(f"| {name} | no person found | | | | | | |")
            continue
        usable = stable_keypoints(image, before)
        present = sorted(usable)
        nudged = cv2.warpAffine(image, np.float32([[1, 0, 3], [0, 1, 3]]), (w, h), borderMode=cv2.BORDER_REFLECT)
        again = detect_pose(nudged, max_people=1)
        found = again.people[0].body[:, :2] * scale - 3 if again.people else np.full((18, 2), np.nan)
        noise = pck(found, before.people[0].body[:, :2] * scale, present, PCK_ALPHA * max(h, w))
        for k in (0, 1):
            totals["noise"][k] += noise[k]
        tally = {"edited": [0, 0], "unedited": [0, 0], "tracked": [0, 0], "unwarped": [0, 0]}
        for _ in range(TRIALS):
            edited = edit(before, usable, rng)
            if edited is None:
                continue
            after, moved = edited
            speed_case = speed_case or (image, before, after)
            warped = warp_pose(image, before, after).image
            again = detect_pose(warped, max_people=1)
            found = again.people[0].body[:, :2] * scale if again.people else np.full((18, 2), np.nan)
            for kind, indices, wanted in (("edited", sorted(moved), after), ("unedited",
                                          [i for i in present if i not in moved], before)):
                hits, count = pck(found, wanted.people[0].body[:, :2] * scale, indices, PCK_ALPHA * max(h, w))
                tally[kind][0] += hits
                tally[kind][1] += count
            for kind, picture in (("tracked", warped), ("unwarped", image)):  # the content, on the warp / the photo
                for i, rotation in moved.items():
                    a, b = before.people[0].body[i, :2] * scale, after.people[0].body[i, :2] * scale
                    tally[kind][0] += tracked(image, picture, a, b, rotation, PCK_ALPHA * max(h, w))
                    tally[kind][1] += 1
        for kind in tally:
            totals[kind][0] += tally[kind][0]
            totals[kind][1] += tally[kind][1]
        found_here = int((~np.isnan(before.people[0].body[:, 0])).sum())
        rows.append(f"| {name} | {len(present)}/{found_here} | {_ratio(list(noise))} | "
                    f"{tally['edited'][1] and TRIALS} | {_ratio(tally['edited'])} | {_ratio(tally['unedited'])} | "
                    f"{_ratio(tally['tracked'])} | {_ratio(tally['unwarped'])} |")
    wall, cpu = speed(*speed_case) if speed_case else (float("nan"), float("nan"))
    machine = platform.processor() or platform.machine()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"# pose warp — {date.today()} — {machine}, {affinity} core(s) visible, python {sys.version.split()[0]}\n")
    print(f"speed, rigid, 512x512, one thread: median {wall:.0f} ms wall, {cpu:.0f} ms CPU "
          f"(goal ≤ {GOALS['ms']:.0f})\n")
    print(f"| photo | stable keypoints | detector noise | edits | PCK@{PCK_ALPHA} edited | PCK@{PCK_ALPHA} unedited | "
          "edited content tracked | same, on the unwarped photo |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(f"| **all** | | {_ratio(totals['noise'])} | | **{_ratio(totals['edited'])}** (goal ≥ {GOALS['edited']}) | "
          f"**{_ratio(totals['unedited'])}** (goal ≥ {GOALS['unedited']}) | **{_ratio(totals['tracked'])}** | "
          f"{_ratio(totals['unwarped'])} |")


def _ratio(tally: list[int]) -> str:
    hits, count = tally
    return f"{hits / count:.3f} ({hits}/{count})" if count else "—"


def figure(path: str) -> None:
    """README's before / after / after with the uncovered areas in magenta, on the astronaut: her head tilted
    12° about the neck and her right arm turned 20° about the shoulder."""
    from kekong.io import save_image

    image = data.astronaut()
    before = detect_pose(image, max_people=1)
    body = before.people[0].body.copy()
    aspect = np.array([before.width, before.height], np.float64)
    for joint, points, degrees in ((1, (0, 14, 15, 16, 17), -12.0), (2, (3, 4), 20.0)):
        angle = math.radians(degrees)
        rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        centre = body[joint, :2] * aspect
        found = [p for p in points if not np.isnan(body[p, 0])]
        body[found, :2] = ((body[found, :2] * aspect - centre) @ rotation.T + centre) / aspect
    result = warp_pose(image, before, PoseResult([Person(body=body)], before.width, before.height))
    shown = result.image.copy()
    shown[result.mask > 0] = (0.5 * shown[result.mask > 0] + 0.5 * np.array([255, 0, 255])).astype(np.uint8)
    gap = np.full((image.shape[0], 8, 3), 255, np.uint8)
    save_image(np.concatenate([image, gap, result.image, gap, shown], axis=1), path)
    print(f"wrote {path} ({result.handles} handles, {(result.mask > 0).mean():.1%} uncovered)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--figure":
        figure(sys.argv[2])
    else:
        main()
