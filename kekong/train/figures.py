"""The synthetic figures dataset (`kekong data figures`): simple people in OpenPose poses.

Each sample has one to three people, left to right, on a plain background. The condition is the
pose map exactly as kekong's openpose detector draws it (kekong.detect.openpose.render, at the
detector's 512 px and fitted to the sample's size as generation fits a map); the target is a
figure in that pose — head, neck, torso and limbs with volume, hands — in a shirt, trousers or a
skirt, with hair and a skin tone; the prompt names the shirt, the trousers or skirt, the hair and
the background, people left to right. Shirt, lower garment, hair and skin are always far from
the background in CIELAB (so the pose bench can tell figure pixels from background pixels), and
shirt and lower garment far from each other.

Besides sampled skeletons, a share of the people take the skeleton kekong's own openpose
detector finds on real photos (scikit-image's), mirrored and jittered, so detected skeletons —
partial ones included — are in distribution.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import cv2
import numpy as np

from kekong.colours import delta_e, lab
from kekong.train.shapes import COLOURS, article, colour_of
from kekong.train.skeletons import (
    FOREARM,
    HEAD_RADIUS,
    HIP,
    L_ANKLE,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    L_WRIST,
    NECK,
    R_ANKLE,
    R_ELBOW,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    R_WRIST,
    SHOULDER,
    THIGH,
    TORSO,
    Skeleton,
    extent,
    random_skeleton,
)

HAIR = {"black": (25, 25, 25), "brown": (115, 65, 30), "blond": (235, 205, 120), "red": (185, 65, 25),
        "gray": (140, 140, 140), "white": (250, 250, 250)}
SKIN = ((250, 215, 185), (225, 175, 135), (165, 110, 75), (100, 65, 45))
LOWER_KINDS = ("trousers", "skirt")
MIN_DELTA_E = 40.0  # garments vs background
MIN_DELTA_E_SKIN = 30.0  # skin and hair vs background; shirt vs lower garment
PEOPLE_WORDS = {1: "a person", 2: "two people", 3: "three people"}
MAP_RESOLUTION = 512  # the openpose detector's default processor resolution
DETECTED_SHARE = 0.15  # people whose skeleton is one detected on a photo


@dataclass
class Figure:
    skeleton: Skeleton
    shirt: str
    lower: str
    lower_kind: str  # trousers | skirt
    hair: str
    skin: tuple[int, int, int]

    def short_words(self) -> str:
        """The compact form used when a prompt names several people."""
        return f"{self.shirt} shirt, {self.lower} {self.lower_kind}, {self.hair} hair"

    def words(self) -> str:
        lower = (f"{self.lower} trousers" if self.lower_kind == "trousers"
                 else f"{article(self.lower)} {self.lower} skirt")
        return f"{article(self.shirt)} {self.shirt} shirt and {lower} with {self.hair} hair"


@dataclass
class FigureSample:
    target: np.ndarray  # uint8 HxWx3
    control: np.ndarray  # uint8 HxWx3, the OpenPose map
    mask: np.ndarray  # bool HxW: figure pixels
    shirt_masks: list[np.ndarray]  # bool HxW per person: their torso (later people cover earlier ones)
    lower_masks: list[np.ndarray]  # bool HxW per person: thighs / skirt
    figures: list[Figure]
    background: str
    prompt: str
    size: int

    def pose(self):
        """The skeletons as a PoseResult on the sample's canvas (normalised keypoints)."""
        from kekong.detect.openpose.keypoints import Person, PoseResult

        people = []
        for figure in self.figures:
            body = np.full((18, 3), np.nan, np.float32)
            shown = ~np.isnan(figure.skeleton.points[:, 0])
            body[shown, :2] = figure.skeleton.points[shown] / self.size
            body[shown, 2] = 1.0
            people.append(Person(body=body))
        return PoseResult(people=people, width=self.size, height=self.size)


def describe(figures: list[Figure], background: str) -> str:
    if len(figures) == 1:
        return f"a person in {figures[0].words()}, on {article(background)} {background} background"
    places = ("left", "right") if len(figures) == 2 else ("left", "middle", "right")
    people = "; ".join(f"{place}: {figure.short_words()}" for place, figure in zip(places, figures, strict=True))
    return f"{PEOPLE_WORDS[len(figures)]} on {article(background)} {background} background; {people}"


def _colour_names(rng: np.random.Generator, usable) -> str:
    names = COLOURS[usable[rng.integers(len(usable))]][1]
    return names[rng.integers(len(names))]


@cache
def _apart(a: tuple[int, int, int], b: tuple[int, int, int], threshold: float) -> bool:
    return bool(delta_e(lab(a), lab(b)) >= threshold)


def _dress(rng: np.random.Generator, skeleton: Skeleton, background: str) -> Figure:
    bg = colour_of(background)
    far = [c for c in COLOURS if _apart(COLOURS[c][0], bg, MIN_DELTA_E)]
    shirt = _colour_names(rng, far)
    lower = _colour_names(rng, [c for c in far if _apart(COLOURS[c][0], colour_of(shirt), MIN_DELTA_E_SKIN)])
    hairs = [h for h, rgb in HAIR.items() if _apart(rgb, bg, MIN_DELTA_E_SKIN)]
    skins = [s for s in SKIN if _apart(s, bg, MIN_DELTA_E_SKIN)]
    return Figure(skeleton, shirt, lower, LOWER_KINDS[rng.integers(2)], hairs[rng.integers(len(hairs))],
                  skins[rng.integers(len(skins))])


@lru_cache(maxsize=1)
def _backgrounds() -> tuple[str, ...]:
    """Background colours every garment, hair and skin choice can be told from (≥ 2 hairs and skins)."""
    usable = []
    for name, (rgb, _) in COLOURS.items():
        bg = lab(rgb)
        hairs = sum(delta_e(lab(h), bg) >= MIN_DELTA_E_SKIN for h in HAIR.values())
        skins = sum(delta_e(lab(s), bg) >= MIN_DELTA_E_SKIN for s in SKIN)
        if hairs >= 2 and skins >= 2:
            usable.append(name)
    return tuple(usable)


def _place(rng: np.random.Generator, size: int, count: int, index: int, height: float) -> Skeleton:
    """A skeleton inside its slot (the canvas split into `count` columns), shrunk until it fits."""
    slot = size / count
    for _ in range(8):
        skeleton = random_skeleton(rng, (0.0, 0.0), height)
        x0, y0, x1, y1 = extent(skeleton)
        if x1 - x0 <= slot - 1 and y1 - y0 <= size - 1:
            dx = rng.uniform(index * slot - x0, (index + 1) * slot - x1)
            dy = rng.uniform(-y0, size - y1)
            skeleton.points += np.array([dx, dy])
            return skeleton
        height *= 0.85
    skeleton.points += np.array([(index + 0.5) * slot - (x0 + x1) / 2, size / 2 - (y0 + y1) / 2])
    return skeleton


def random_sample(rng: np.random.Generator, size: int = 64, detected: float = DETECTED_SHARE) -> FigureSample:
    """One sample: 1 (60%), 2 (30%) or 3 people, each as tall as their share of the canvas allows."""
    count = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
    backgrounds = _backgrounds()
    background = _colour_names(rng, backgrounds)
    low, high = {1: (0.6, 0.95), 2: (0.5, 0.85), 3: (0.45, 0.7)}[count]
    figures = []
    for index in range(count):
        skeleton = _place(rng, size, count, index, rng.uniform(low, high) * size) if rng.random() >= detected \
            else _place_detected(rng, size, count, index, rng.uniform(low, high) * size)
        figures.append(_dress(rng, skeleton, background))
    return draw(figures, background, size)


# --- drawing ---------------------------------------------------------------------------------

def _line(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, width: float, colour, up: int) -> None:
    if np.isnan(a[0]) or np.isnan(b[0]):
        return
    cv2.line(canvas, tuple(np.round(a * up).astype(int)), tuple(np.round(b * up).astype(int)), colour,
             max(1, round(width * up)), lineType=cv2.LINE_AA)


def _torso(skeleton: Skeleton) -> np.ndarray | None:
    p, h, w = skeleton.points, skeleton.height, skeleton.width_factor
    hips = [p[i] for i in (R_HIP, L_HIP) if not np.isnan(p[i, 0])]
    if np.isnan(p[NECK, 0]):
        return None
    bottom = np.mean(hips, axis=0) if hips else p[NECK] + np.array([0.0, TORSO * h])
    axis = bottom - p[NECK]
    across = np.array([axis[1], -axis[0]]) / max(np.linalg.norm(axis), 1e-6)
    top_half, bottom_half = max(SHOULDER * w, 0.06) * h, max((HIP + 0.03) * w, 0.055) * h
    return np.array([p[NECK] + across * top_half, p[NECK] - across * top_half,
                     bottom - across * bottom_half, bottom + across * bottom_half])


def _head(skeleton: Skeleton) -> np.ndarray | None:
    p = skeleton.points
    head = [p[i] for i in (0, 14, 15, 16, 17) if not np.isnan(p[i, 0])]
    if not head and np.isnan(p[NECK, 0]):
        return None
    return np.mean(head, axis=0) if head and skeleton.pose == "detected" else skeleton.head_centre()


def _draw_person(canvas: np.ndarray, figure: Figure, up: int, masks: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Draw one figure onto the 4× canvas; `masks` (figure, shirt, lower) are drawn alike with 255."""
    s, h = figure.skeleton, figure.skeleton.height
    p = s.points
    shirt, lower, skin, hair = colour_of(figure.shirt), colour_of(figure.lower), figure.skin, HAIR[figure.hair]
    figure_mask, shirt_mask, lower_mask = masks
    thigh, shin, upper_arm, forearm = 0.10 * h, 0.085 * h, 0.075 * h, 0.06 * h

    def paint(draw, colour, part_mask=None) -> None:
        draw(canvas, colour)
        draw(figure_mask, 255)
        if part_mask is not None:
            draw(part_mask, 255)
        for other in (shirt_mask, lower_mask):  # what is painted over is no longer the other part
            if other is not part_mask:
                draw(other, 0)

    for hip, knee, ankle in ((R_HIP, R_KNEE, R_ANKLE), (L_HIP, L_KNEE, L_ANKLE)):
        leg_colour = lower if figure.lower_kind == "trousers" else skin
        paint(lambda c, v, a=p[knee], b=p[ankle]: _line(c, a, b, shin, v, up), leg_colour,
              lower_mask if figure.lower_kind == "trousers" else None)
        paint(lambda c, v, a=p[hip], b=p[knee]: _line(c, a, b, thigh, v, up), leg_colour,
              lower_mask if figure.lower_kind == "trousers" else None)
    torso = _torso(s)
    if figure.lower_kind == "skirt" and torso is not None:
        hips, flare = torso[2:], (torso[3] - torso[2]) * 0.35
        down = np.array([0.0, 0.62 * THIGH * h])  # most of the way down the thighs
        skirt = np.array([hips[0], hips[1], hips[1] + down + flare, hips[0] + down - flare])
        paint(lambda c, v: cv2.fillConvexPoly(c, np.round(skirt * up).astype(np.int32), v, cv2.LINE_AA), lower,
              lower_mask)
    head = _head(s)
    if head is not None and not np.isnan(p[NECK, 0]):
        paint(lambda c, v: _line(c, p[NECK], head, 0.05 * h, v, up), skin)
    if torso is not None:
        paint(lambda c, v: cv2.fillConvexPoly(c, np.round(torso * up).astype(np.int32), v, cv2.LINE_AA), shirt,
              shirt_mask)
    for shoulder, elbow, wrist in ((R_SHOULDER, R_ELBOW, R_WRIST), (L_SHOULDER, L_ELBOW, L_WRIST)):
        paint(lambda c, v, a=p[shoulder], b=p[elbow]: _line(c, a, b, upper_arm, v, up), shirt)
        paint(lambda c, v, a=p[elbow], b=p[wrist]: _line(c, a, b, forearm, v, up), skin)
        if not np.isnan(p[wrist, 0]):
            hand_end = p[wrist] + (p[wrist] - p[elbow]) * (0.045 / FOREARM) if not np.isnan(p[elbow, 0]) else p[wrist]
            paint(lambda c, v, a=p[wrist], b=hand_end: _line(c, a, b, 0.055 * h, v, up), skin)
    if head is not None:
        r = HEAD_RADIUS * h
        centre = tuple(np.round(head * up).astype(int))
        paint(lambda c, v: cv2.circle(c, centre, round(r * up), v, -1, cv2.LINE_AA), skin)
        # Hair: the top of the head, and behind it towards the back in a side view.
        back = -s.turn if s.pose != "detected" else 0.0
        hair_centre = tuple(np.round((head + np.array([back * 0.15 * r, -0.12 * r])) * up).astype(int))
        axes = (round(r * 1.05 * up), round(r * 0.8 * up))
        paint(lambda c, v: cv2.ellipse(c, hair_centre, axes, 0, 180, 360, v, -1, cv2.LINE_AA), hair)


def draw(figures: list[Figure], background: str, size: int) -> FigureSample:
    """Render target, masks and control map (targets drawn at 4× and reduced: smooth edges)."""
    from kekong.detect.openpose.render import draw_pose
    from kekong.detect.resolution import ResizeMode, fit_to_target

    up = 4
    big = np.empty((size * up, size * up, 3), np.uint8)
    big[:] = colour_of(background)
    figure_mask = np.zeros((size * up, size * up), np.uint8)
    shirts, lowers = [], []
    for figure in figures:
        own, shirt, lower = (np.zeros_like(figure_mask) for _ in range(3))
        _draw_person(big, figure, up, (own, shirt, lower))
        for earlier in (*shirts, *lowers):  # a later person covers earlier ones
            earlier[own > 0] = 0
        figure_mask |= own
        shirts.append(shirt)
        lowers.append(lower)
    reduce = lambda a: cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA) >= 128  # noqa: E731
    target = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
    sample = FigureSample(target, np.zeros((size, size, 3), np.uint8), reduce(figure_mask),
                          [reduce(m) for m in shirts], [reduce(m) for m in lowers], figures,
                          background, describe(figures, background), size)
    pose = sample.pose()
    pose.width = pose.height = MAP_RESOLUTION
    sample.control = fit_to_target(draw_pose(pose, hands=False, face=False), (size, size), ResizeMode.JUST_RESIZE)
    return sample


# --- skeletons detected on photos ---------------------------------------------------------------

@lru_cache(maxsize=1)
def photo_bodies() -> tuple[np.ndarray, ...]:
    """Bodies (18×2, normalised, NaN = missing) that kekong's openpose detector finds on
    scikit-image's photos of people, each also mirrored (left and right swapped)."""
    from skimage import data as photos

    from kekong.detect import run
    from kekong.detect.openpose.keypoints import PoseResult

    bodies = []
    for name in ("astronaut", "camera"):
        image = getattr(photos, name)()
        image = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image
        for flipped in (False, True):
            found = run("openpose", np.ascontiguousarray(image[:, ::-1]) if flipped else image)
            for person in PoseResult.from_json(found.data).people if found.data else []:
                if person.body is not None:
                    bodies.append(person.body[:, :2].astype(np.float64))
    return tuple(bodies)


def _place_detected(rng: np.random.Generator, size: int, count: int, index: int, height: float) -> Skeleton:
    bodies = photo_bodies()
    if not bodies:
        return _place(rng, size, count, index, height)
    body = bodies[rng.integers(len(bodies))].copy()
    shown = ~np.isnan(body[:, 0])
    body[shown] += rng.normal(0, 0.008, (shown.sum(), 2))  # jitter
    # Scale by the torso (neck to hips) or the shoulders, whichever the photo shows.
    hips = body[[R_HIP, L_HIP]][~np.isnan(body[[R_HIP, L_HIP], 0])]
    if hips.size and shown[NECK]:
        unit = np.linalg.norm(hips.mean(axis=0) - body[NECK]) / TORSO
    elif shown[R_SHOULDER] and shown[L_SHOULDER]:
        unit = np.linalg.norm(body[R_SHOULDER] - body[L_SHOULDER]) / (2 * SHOULDER)
    else:
        return _place(rng, size, count, index, height)
    points = (body - np.nanmean(body, axis=0)) / unit * height
    skeleton = Skeleton(points, height, 1.0, "detected")
    slot = size / count
    (x0, y0), (x1, y1) = np.nanmin(points, axis=0), np.nanmax(points, axis=0)
    scale = min(1.0, (slot - 2) / max(x1 - x0 + 0.2 * height, 1), (size - 2) / max(y1 - y0 + 0.25 * height, 1))
    skeleton.points, skeleton.height = points * scale, height * scale
    x0, y0, x1, y1 = extent(skeleton)
    skeleton.points += np.array([rng.uniform(index * slot - x0, max(index * slot - x0, (index + 1) * slot - x1)),
                                 rng.uniform(-y0, max(-y0, size - y1))])
    return skeleton


def write_dataset(folder: Path, count: int, size: int = 64, seed: int = 0) -> Path:
    """The fill layout: source/ (pose maps), target/, prompt.json (JSON lines), pose/ (OpenPose JSON)."""
    from kekong.io import save_image, write_atomic

    folder = Path(folder)
    for sub in ("source", "target", "pose"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for index in range(count):
        sample = random_sample(rng, size)
        name = f"{index:06d}"
        save_image(sample.control, folder / "source" / f"{name}.png")
        save_image(sample.target, folder / "target" / f"{name}.png")
        (folder / "pose" / f"{name}.json").write_text(json.dumps(sample.pose().to_json()))
        lines.append(json.dumps({"source": f"source/{name}.png", "target": f"target/{name}.png",
                                 "prompt": sample.prompt, "pose": f"pose/{name}.json"}))
    write_atomic(folder / "prompt.json", ("\n".join(lines) + "\n").encode())
    return folder
