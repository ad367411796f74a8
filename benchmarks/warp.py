"""The pose warp (`kekong warp`): speed at 512² on one core, and whether the people really move.

Speed: median wall and CPU time of warp_pose on the first edited photo, single-threaded, per warp.
Accuracy: scikit-image's photos with people (astronaut, camera), each as it is and mirrored, and each of
those turned ±4°, ±8° and scaled 0.85–1.15 (36 photos); on each, up to TRIALS random edits of 1–3
limbs (a limb turned about its joint by 12°–35°, within joint limits, inside the frame; see edit()).
The pose is re-detected on the warped photo by the detector that found the handles (detect_pose, one
person) and PCK@0.05 (of the long side) taken of the edited keypoints (against where they were asked
to go) and of the unedited ones (against where they were); re-detection failures (no such keypoint
found) are counted apart from misplaced keypoints.
Only keypoints mediapipe places stably are used (found within 0.04 of the long side on the photo
shifted 6 px either way diagonally): on these portraits it also guesses hidden elbows and wrists.
The "stable" column says how many of the photo's keypoints that leaves; "detector noise" is the PCK of
those on the photo shifted 3 px (no warp at all): the ceiling a re-detection can reach.
The warps compared (WARPS) get the same edits: one MLS warp of the whole picture, the layered warp
(kekong's default: warp_layers.py) and the layered warp cut to mediapipe's selfie segmentation.
Prints Markdown for BENCHMARKS.md. Run it with `nice` on a shared machine. `--figure PATH` writes
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
JOINTS = ((2, 3, 4), (5, 6, 7), (8, 9, 10), (11, 12, 13))  # (parent, joint, child): elbows and knees
JOINT_FOLD = 30.0  # degrees: the tightest an elbow or knee may fold (interior angle)
JOINT_BACK = 10.0  # degrees: how far past straight a bent elbow or knee may be turned the other way
REACH = 0.45  # the hand or foot past the last moved keypoint, as a share of its bone (kept in the frame)
VARIANTS = tuple((f"turned {a:+d}°", a, 1.0) for a in (4, -4, 8, -8)) + tuple(
    (f"scaled {s}", 0, s) for s in (0.85, 0.92, 1.08, 1.15))
WARPS = {  # the warps compared, each with warp_pose's options
    "MLS": {},
    "layered": {"layered": True},
    "layered, person mask": {"layered": True, "person_mask": True},
}


def photos() -> dict[str, np.ndarray]:
    """The photos with people and their variants: each as it is and mirrored, and each of those turned ±4°
    and ±8° and scaled 0.85, 0.92, 1.08 and 1.15 about the centre (the edge pixels repeated outwards:
    a reflected border would add mirrored copies of the body)."""
    bases = {"astronaut": data.astronaut(), "camera": np.stack([data.camera()] * 3, axis=2)}
    out = {}
    for name, image in bases.items():
        h, w = image.shape[:2]
        for side, picture in ((name, image), (f"{name} mirrored", np.ascontiguousarray(image[:, ::-1]))):
            out[side] = picture
            for label, angle, scale in VARIANTS:
                matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
                out[f"{side} {label}"] = cv2.warpAffine(picture, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
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


def _turn(points: np.ndarray, centre: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return (points - centre) @ rotation.T + centre, rotation


def within_limits(body: np.ndarray) -> bool:
    """Whether each elbow and knee (pixels, NaN = missing) bends no tighter than JOINT_FOLD and not back past
    straight by more than JOINT_BACK (2D: its bend may not change side unless it was nearly straight)."""
    bends = (_bend(body, a, b, c) for a, b, c in JOINTS)
    return all(bend is None or bend[0] >= JOINT_FOLD for bend in bends)


def _bend(body: np.ndarray, a: int, b: int, c: int) -> tuple[float, float] | None:
    """(interior angle°, signed bend°) at joint b between bones b→a and b→c."""
    if np.isnan(body[[a, b, c], 0]).any():
        return None
    u, v = body[a] - body[b], body[c] - body[b]
    interior = math.degrees(math.atan2(abs(u[0] * v[1] - u[1] * v[0]), float(u @ v)))
    side = math.copysign(1.0, u[0] * v[1] - u[1] * v[0])
    return interior, side * (180.0 - interior)


def _bends_back(before: np.ndarray, after: np.ndarray) -> bool:
    """An elbow or knee whose bend changed side by more than JOINT_BACK (it was bent one way, now the other)."""
    for a, b, c in JOINTS:
        was, now = _bend(before, a, b, c), _bend(after, a, b, c)
        if was is None or now is None:
            continue
        if abs(was[1]) > JOINT_BACK and was[1] * now[1] < 0 and abs(now[1]) > JOINT_BACK:
            return True
    return False


def edit(pose: PoseResult, usable: set[int], rng: np.random.Generator,
         ) -> tuple[PoseResult, dict[int, np.ndarray]] | None:
    """1–3 limbs of the first person turned about their joints within joint limits; None when no limb can
    move. A limb can move when its joint and the keypoint below it are stable and the pose has the whole
    chain below the joint (an upper arm: elbow and wrist); the whole chain turns, and only its stable
    keypoints are scored. A turn is kept when each scored keypoint moves farther than the PCK radius (so
    the unwarped photo scores none), the moved keypoints and the hand or foot past them stay inside the
    frame, clear of the other keypoints, and every elbow and knee stays within its limits (within_limits,
    _bends_back)."""
    body = pose.people[0].body.copy()
    present = np.array([i in usable for i in range(len(body))])
    found = ~np.isnan(body[:, 0])
    movable = [name for name, (joint, points) in LIMBS.items()
               if present[joint] and present[points[0]] and found[list(points)].all()]
    if not movable:
        return None
    aspect = np.array([pose.width, pose.height], np.float64)
    moved: dict[int, np.ndarray] = {}
    turned_any: set[int] = set()
    for name in rng.permutation(movable)[: rng.integers(1, 4)]:
        joint, points = LIMBS[str(name)]
        if turned_any & {joint, *points}:
            continue  # a limb already moved by its parent keeps that edit alone
        for _ in range(20):
            angle = math.radians(rng.uniform(*ANGLES) * rng.choice((-1, 1)))
            pixels = body[:, :2] * aspect
            turned, rotation = _turn(pixels[list(points)], pixels[joint], angle)
            trial = pixels.copy()
            trial[list(points)] = turned
            others = pixels[[i for i in range(len(body)) if found[i] and i not in points]]
            clear = np.hypot(*(turned[:, None] - others[None]).transpose(2, 0, 1)).min() > CLEAR * aspect.max()
            tip, parent = points[-1], ([joint, *points][-2])
            reach = trial[tip] + REACH * (trial[tip] - trial[parent])  # the hand or foot
            inside = np.all((np.vstack([turned, reach]) > 0.03 * aspect) & (np.vstack([turned, reach]) < 0.97 * aspect))
            scored = [k for k, p in enumerate(points) if present[p]]
            far = np.hypot(*(turned[scored] - pixels[list(points)][scored]).T).min() > PCK_ALPHA * aspect.max()
            if clear and inside and far and within_limits(trial) and not _bends_back(pixels, trial):
                body[list(points), :2] = turned / aspect
                turned_any |= set(points)
                moved.update({p: rotation for p in points if present[p]})
                break
    if not moved:
        return None
    return PoseResult([Person(body=body)], pose.width, pose.height), moved


def score(found: np.ndarray | None, wanted: np.ndarray, indices: list[int], threshold: float,
          origin: np.ndarray | None = None) -> np.ndarray:
    """(hits, stayed, elsewhere, missed) of keypoints `indices` (pixels; found None = no person re-detected,
    NaN = that keypoint not re-detected). Stayed: not a hit but within the threshold of `origin` (where an
    edited keypoint was before the edit: the detector did not follow the limb)."""
    out = np.zeros(4, int)
    for i in indices:
        if found is None or np.isnan(found[i, 0]):
            out[3] += 1
        elif np.hypot(*(found[i] - wanted[i])) <= threshold:
            out[0] += 1
        else:
            out[1 if origin is not None and np.hypot(*(found[i] - origin[i])) <= threshold else 2] += 1
    return out


def speed(image: np.ndarray, before: PoseResult, after: PoseResult, repeats: int = 15,
          **options: object) -> tuple[float, float]:
    """(median wall ms, median CPU ms) of one rigid warp."""
    warp_pose(image, before, after, **options)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        warp_pose(image, before, after, **options)
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def _warp(image: np.ndarray, before: PoseResult, after: PoseResult, how: str, person: np.ndarray) -> np.ndarray:
    options = WARPS[how]
    mask = person if options.get("person_mask") else None
    return warp_pose(image, before, after, layered=bool(options.get("layered")), person_mask=mask).image


def main() -> None:
    from kekong.detect.segmentation import person_probability

    rng = np.random.default_rng(26)
    rows = []
    totals = {how: {"edited": np.zeros(4, int), "unedited": np.zeros(4, int)} for how in WARPS}
    noise_total = np.zeros(4, int)
    speed_case = None
    for name, image in photos().items():
        h, w = image.shape[:2]
        scale = np.array([w, h], np.float64)
        threshold = PCK_ALPHA * max(h, w)
        before = detect_pose(image, max_people=1)
        if not before.people:
            rows.append(f"| {name} | no person found | | |" + " |" * (2 * len(WARPS)))
            continue
        usable = stable_keypoints(image, before)
        present = sorted(usable)
        nudged = cv2.warpAffine(image, np.float32([[1, 0, 3], [0, 1, 3]]), (w, h), borderMode=cv2.BORDER_REFLECT)
        again = detect_pose(nudged, max_people=1)
        found = again.people[0].body[:, :2] * scale - 3 if again.people else None
        noise = score(found, before.people[0].body[:, :2] * scale, present, threshold)
        noise_total += noise
        person = person_probability(image)
        tally = {how: {"edited": np.zeros(4, int), "unedited": np.zeros(4, int)} for how in WARPS}
        edits = 0
        for _ in range(TRIALS):
            edited = edit(before, usable, rng)
            if edited is None:
                continue
            edits += 1
            after, moved = edited
            speed_case = speed_case or (image, before, after, person)
            for how in WARPS:
                again = detect_pose(_warp(image, before, after, how, person), max_people=1)
                found = again.people[0].body[:, :2] * scale if again.people else None
                origin = before.people[0].body[:, :2] * scale
                tally[how]["edited"] += score(found, after.people[0].body[:, :2] * scale, sorted(moved), threshold,
                                              origin)
                tally[how]["unedited"] += score(found, origin, [i for i in present if i not in moved], threshold)
        for how in WARPS:
            for kind in ("edited", "unedited"):
                totals[how][kind] += tally[how][kind]
        found_here = int((~np.isnan(before.people[0].body[:, 0])).sum())
        cells = " | ".join(f"{_ratio(tally[how]['edited'])} | {_ratio(tally[how]['unedited'])}" for how in WARPS)
        rows.append(f"| {name} | {len(present)}/{found_here} | {_ratio(noise)} | {edits} | {cells} |")
    machine = platform.processor() or platform.machine()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"# pose warp — {date.today()} — {machine}, {affinity} core(s) visible, python {sys.version.split()[0]}\n")
    print("| photo | stable keypoints | detector noise | edits | "
          + " | ".join(f"{how}: edited | {how}: unedited" for how in WARPS) + " |")
    print("|---|---:|---:|---:|" + "---:|---:|" * len(WARPS))
    print("\n".join(rows))
    print(f"\nPCK@{PCK_ALPHA} (of the long side) over all edits. An edited keypoint that is not a hit either "
          "*stayed* (re-detected where it was before the edit: the detector did not follow the limb), was found "
          "*elsewhere*, or was *missed* (no such keypoint, or no person, re-detected); every edit moves its "
          "keypoints farther than the PCK radius, so the unwarped photo scores 0 on them. Detector noise: "
          f"{_ratio(noise_total)}.\n")
    print(f"| warp | edited PCK (goal ≥ {GOALS['edited']}) | stayed | elsewhere | missed | unedited PCK (goal ≥ "
          f"{GOALS['unedited']}) | misplaced | missed | 512² rigid, one thread: wall / CPU ms (goal ≤ "
          f"{GOALS['ms']:.0f}) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for how, options in WARPS.items():
        edited, unedited = totals[how]["edited"], totals[how]["unedited"]
        if speed_case:
            image, before, after, person = speed_case
            wall, cpu = speed(image, before, after, layered=bool(options.get("layered")),
                              person_mask=person if options.get("person_mask") else None)
        else:
            wall = cpu = float("nan")
        print(f"| {how} | **{_ratio(edited)}** | {edited[1]} | {edited[2]} | {edited[3]} | **{_ratio(unedited)}** | "
              f"{unedited[1] + unedited[2]} | {unedited[3]} | {wall:.0f} / {cpu:.0f} |")


def _ratio(tally: np.ndarray) -> str:
    count = int(tally.sum())
    return f"{tally[0] / count:.3f} ({tally[0]}/{count})" if count else "—"


def figure(path: str) -> None:
    """README's before / after / after with the uncovered areas in magenta, on the astronaut: her head tilted
    12° about the neck and her right arm turned 20° in about the shoulder (kekong warp's default, layered)."""
    from kekong.io import save_image

    image = data.astronaut()
    before = detect_pose(image, max_people=1)
    body = before.people[0].body.copy()
    aspect = np.array([before.width, before.height], np.float64)
    for joint, points, degrees in ((1, (0, 14, 15, 16, 17), -12.0), (2, (3, 4), -20.0)):
        angle = math.radians(degrees)
        rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        centre = body[joint, :2] * aspect
        found = [p for p in points if not np.isnan(body[p, 0])]
        body[found, :2] = ((body[found, :2] * aspect - centre) @ rotation.T + centre) / aspect
    result = warp_pose(image, before, PoseResult([Person(body=body)], before.width, before.height), layered=True)
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
