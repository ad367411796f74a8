"""The layered pose warp: each limb the edit turns is cut out and moved as a layer of its own.

A single MLS warp over the whole picture drags whatever lies near a moved limb along with it: an arm
folded in front of the body pulls the torso's pixels with it, and the arm, smeared into its
surroundings, loses its outline. Here the picture is taken apart instead:

- a *chain* is a limb from the joint it hangs on: right/left arm (shoulder → elbow → wrist, with its
  hand), right/left leg (hip → knee → ankle). A chain is *moved* when one of its keypoints moves
  other than its root joint does (more than MOVED px);
- the *background* is the MLS warp of every handle except the moved chains' (their root joints
  stay): for an edit of limbs alone it is the photo itself;
- each moved chain's *layer* is the photo inside a capsule around its bones (widths below, hand or
  foot reach past the last joint, narrowed to the person's segmentation when one is given), moved by
  the MLS warp of that chain's handles alone, and laid over the background (legs first, then arms);
- the *hole* is where a moved limb was and no layer now lies: it is filled from its surroundings
  (cv2.inpaint, Telea) and marked in the mask, together with the layer's rim, the capsule's margin
  that is not sure to be limb.

The layers use the warp's mode, except that affine becomes similarity: a chain's handles are
near-collinear, and an affine fit to them is near-singular.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import cv2
import numpy as np

from kekong.detect.openpose.keypoints import Person, PoseResult

# chain → (root joint, joints below it in order, the hand that hangs on it); OpenPose body indices
CHAINS = {
    "right arm": (2, (3, 4), "right_hand"),
    "left arm": (5, (6, 7), "left_hand"),
    "right leg": (8, (9, 10), None),
    "left leg": (11, (12, 13), None),
}
DRAW_ORDER = ("right leg", "left leg", "right arm", "left arm")  # later layers lie on top
# capsule radius of each bone (root bone, lower bone), as a share of the torso's length (neck to the hips'
# midpoint): an upper arm is about 10 cm wide on a 50 cm torso, a thigh 16 cm; these leave a margin
RADIUS = {"arm": (0.13, 0.11), "leg": (0.18, 0.13)}
REACH = {"arm": 0.45, "leg": 0.3}  # the hand / foot beyond the last joint, as a share of the lower bone
CORE = 0.6  # the inner part of a capsule (share of its radius) taken as limb for sure; the rest is the rim
KEEP = 0.35  # the part of a capsule kept even where the person's segmentation says background
MOVED = 1.0  # px a keypoint must move, apart from its root joint, for its chain to be moved
FEATHER = 1.5  # px: blur of a layer's edge
FILL_RADIUS = 5  # px: cv2.inpaint's neighbourhood for the hole


@dataclass
class Layer:
    """One moved chain: its own pose pair (the root and the chain's keypoints) and its capsule in the photo."""

    before: Person
    after: Person
    capsule: np.ndarray  # H×W float32 in [0, 1]: 1 inside the capsule, KEEP-radius core always
    core: np.ndarray  # H×W bool: the capsule's inner part


def _px(person: Person, part: str, scale: np.ndarray) -> np.ndarray | None:
    points = getattr(person, part)
    return None if points is None else points[:, :2].astype(np.float64) * scale


def _torso(body: np.ndarray) -> float | None:
    """Neck to the hips' midpoint (px), else 1.3 × the shoulder width; None when neither is there."""
    hips = body[[8, 11]]
    if not np.isnan(body[1, 0]) and not np.isnan(hips[:, 0]).all():
        return float(np.hypot(*(np.nanmean(hips, axis=0) - body[1])))
    if not np.isnan(body[[2, 5], 0]).any():
        return 1.3 * float(np.hypot(*(body[2] - body[5])))
    return None


def moved_chains(before: Person, after: Person, scale: np.ndarray) -> list[str]:
    """The chains of one person whose keypoints move other than their root does, in drawing order."""
    a, b = _px(before, "body", scale), _px(after, "body", scale)
    if a is None or b is None:
        return []
    out = []
    for name in DRAW_ORDER:
        root, joints, hand = CHAINS[name]
        if np.isnan(a[root, 0]) or np.isnan(b[root, 0]):
            continue
        shift = b[root] - a[root]
        points = [b[j] - a[j] - shift for j in joints if not (np.isnan(a[j, 0]) or np.isnan(b[j, 0]))]
        ha, hb = _px(before, hand, scale) if hand else None, _px(after, hand, scale) if hand else None
        if ha is not None and hb is not None:
            both = ~np.isnan(ha[:, 0]) & ~np.isnan(hb[:, 0])
            points += list(hb[both] - ha[both] - shift)
        if points and max(np.hypot(*p) for p in points) > MOVED:
            out.append(name)
    return out


def _segment_distance(xx: np.ndarray, yy: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    d = q - p
    t = np.clip(((xx - p[0]) * d[0] + (yy - p[1]) * d[1]) / max(float(d @ d), 1e-9), 0, 1)
    return np.hypot(xx - p[0] - t * d[0], yy - p[1] - t * d[1])


def _capsule(name: str, body: np.ndarray, hand: np.ndarray | None, hw: tuple[int, int],
             person_mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The chain's capsule in the photo (soft mask, core), or None when it has no bone there."""
    root, joints, _ = CHAINS[name]
    kind = name.split()[-1]
    chain = [root, *(j for j in joints if not np.isnan(body[j, 0]))]
    if len(chain) < 2:
        return None
    lengths = [float(np.hypot(*(body[j] - body[i]))) for i, j in pairwise(chain)]
    torso = _torso(body) or 1.6 * max(lengths)
    segments = []  # (start, end, radius)
    for k, (i, j) in enumerate(pairwise(chain)):
        segments.append((body[i], body[j], max(2.0, RADIUS[kind][min(k, 1)] * torso)))
    start, end, radius = segments[-1]
    tip = chain[-1]
    if hand is not None and not np.isnan(hand[:, 0]).all():
        for point in hand[~np.isnan(hand[:, 0])]:
            segments.append((body[tip], point, radius))
    elif tip == joints[-1]:  # the hand or foot past the wrist or ankle
        segments.append((end, end + REACH[kind] * (end - start), radius))
    h, w = hw
    reach = max(r for _, _, r in segments) + 2
    points = np.array([p for s in segments for p in s[:2]])
    x0, y0 = np.maximum(0, np.floor(points.min(axis=0) - reach)).astype(int)
    x1, y1 = np.minimum([w, h], np.ceil(points.max(axis=0) + reach) + 1).astype(int)
    soft, core = np.zeros((h, w), np.float32), np.zeros((h, w), bool)
    if x1 <= x0 or y1 <= y0:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    share = np.min([_segment_distance(xx, yy, p, q) / r for p, q, r in segments], axis=0)  # distance / radius
    inside = share <= 1
    if person_mask is not None:
        inside &= (person_mask[y0:y1, x0:x1] > 0.5) | (share <= KEEP)
    soft[y0:y1, x0:x1] = inside
    core[y0:y1, x0:x1] = share <= CORE
    return soft, core


def layers(before: PoseResult, after: PoseResult, hw: tuple[int, int],
           person_mask: np.ndarray | None = None) -> tuple[list[Layer], PoseResult, PoseResult]:
    """The moved chains as layers, and the two poses without them (their root joints kept) for the background."""
    h, w = hw
    scale = np.array([w, h], np.float64)
    found: list[Layer] = []
    rest_before, rest_after = [], []
    for a, b in zip(before.people, after.people, strict=True):
        chains = moved_chains(a, b, scale)
        ra, rb = _copy(a), _copy(b)
        for name in chains:
            root, joints, hand = CHAINS[name]
            made = _capsule(name, _px(a, "body", scale), _px(a, hand, scale) if hand else None, hw, person_mask)
            if made is None:
                continue
            found.append(Layer(_only(a, root, joints, hand), _only(b, root, joints, hand), *made))
            for person in (ra, rb):
                person.body[list(joints)] = np.nan
                if hand:
                    setattr(person, hand, None)
        rest_before.append(ra)
        rest_after.append(rb)
    return (found, PoseResult(rest_before, before.width, before.height),
            PoseResult(rest_after, after.width, after.height))


def _copy(person: Person) -> Person:
    return Person(*(None if v is None else v.copy() for v in
                    (person.body, person.left_hand, person.right_hand, person.face)))


def _only(person: Person, root: int, joints: tuple[int, ...], hand: str | None) -> Person:
    """The person with only the chain's keypoints (and its hand)."""
    body = np.full_like(person.body, np.nan)
    body[[root, *joints]] = person.body[[root, *joints]]
    kept = Person(body=body)
    if hand:
        setattr(kept, hand, getattr(person, hand))
    return kept


def composite(background: np.ndarray, bg_map: tuple[np.ndarray, np.ndarray], photo: np.ndarray,
              placed: list[tuple[Layer, tuple[np.ndarray, np.ndarray]]]) -> tuple[np.ndarray, np.ndarray]:
    """The background with the moved limbs' old places filled and each layer laid over it; and the mask of
    the hole (where a limb was and none is now) and of the layers' rims.

    `bg_map` and each layer's map are the backward maps (map_x, map_y) of their warps."""
    h, w = photo.shape[:2]
    was = np.zeros((h, w), np.float32)  # where a moved limb was, in the output
    for layer, _ in placed:
        was = np.maximum(was, cv2.remap(layer.capsule, *bg_map, cv2.INTER_LINEAR, borderValue=0))
    gone = (was > 0.5).astype(np.uint8) * 255
    out = cv2.inpaint(background, gone, FILL_RADIUS, cv2.INPAINT_TELEA).astype(np.float32)
    cover = np.zeros((h, w), np.float32)
    rims = np.zeros((h, w), bool)
    for layer, (mx, my) in placed:
        alpha = cv2.remap(layer.capsule, mx, my, cv2.INTER_LINEAR, borderValue=0)
        core = cv2.remap(layer.core.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderValue=0) > 0.5
        alpha = cv2.GaussianBlur(alpha, (0, 0), FEATHER) * (alpha > 0)
        pixels = cv2.remap(photo, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        a = alpha[..., None] if out.ndim == 3 else alpha
        out = a * pixels + (1 - a) * out
        rims |= (alpha > 0.05) & ~core
        cover = np.maximum(cover, alpha)
    image = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return image, ((was > 0.5) & (cover < 0.5)) | rims
