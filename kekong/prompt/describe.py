"""Image → prompt (`kekong prompt describe`; A1111's "interrogate").

Always available offline — a structural description from kekong's own detectors: how many
people (bodies, else faces; "no humans" only when neither is found),
the framing (close-up / upper body / cowboy shot / full body, from which keypoints are
in frame), pose words (standing, sitting, arms raised, looking at viewer or to the side), the
dominant colours (named from hue, saturation and lightness; none for a greyscale picture, which
is called greyscale), and whether the picture is line art, a photo or an illustration — said only
when the measures agree (sensor noise and flat areas), so a picture it cannot tell gets no kind
rather than a wrong one. It names no subject it has no detector for (a cat is not called one).
With caption and CLIP models on disk, the CLIP-interrogator method (`kekong.prompt.interrogate`)
adds a caption and CLIP-ranked tags.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from kekong.detect import run
from kekong.detect.openpose.keypoints import PoseResult
from kekong.detect.openpose.mediapipe_pose import detect_faces
from kekong.io import as_rgb

MIN_SHARE = 0.1  # a colour covering less of the picture is not named
GREY_SATURATION = 0.04  # mean saturation below this: a greyscale picture
# (hue upper bound in degrees, name): the chromatic names, in hue order
HUES = ((10, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (200, "teal"), (255, "blue"),
        (290, "purple"), (345, "pink"), (361, "red"))


@dataclass
class Description:
    tags: list[str]
    data: dict = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        return ", ".join(self.tags)


def describe_structure(image: np.ndarray) -> Description:
    """Tags about people, framing, pose, colours and kind of picture, from detectors only.
    `image` is uint8 HxW, HxWx1, HxWx3 or HxWx4."""
    image = as_rgb(image)
    pose = PoseResult.from_json(run("openpose", image).data)
    people = pose.people
    tags: list[str] = []
    count = len(people) or len(detect_faces(image))  # a face without a body is a person too
    data: dict = {"people": count}
    tags += {0: ["no humans"], 1: ["solo", "one person"], 2: ["two people"]}.get(count, ["group of people"])
    if people:
        main = max(people, key=_size)
        framing = frame(main)
        data["framing"] = framing
        tags.append(framing)
        words = pose_words(main)
        data["pose"] = words
        tags += words
    grey = is_greyscale(image)
    if people and not grey:
        clothes = clothes_colour(image, max(people, key=_size))
        if clothes:
            data["clothes"] = clothes
            tags.append(f"{clothes} clothes")
    colours = [] if grey else dominant_colours(image)
    data["colours"] = colours
    kind = picture_kind(image)
    data["kind"] = kind
    tags += [kind] if kind else []
    tags += ["greyscale"] if grey else [" and ".join([", ".join(colours[:-1]), colours[-1]]) if len(colours) > 1
                                        else colours[0]] if colours else []
    return Description(tags, data)


def _size(person) -> float:
    body = person.body
    if body is None:
        return 0.0
    points = body[~np.isnan(body[:, 0]), :2]
    return float(np.ptp(points, axis=0).prod()) if len(points) > 1 else 0.0


def _has(person, *indices: int) -> bool:
    return any(person.point(i) is not None for i in indices)


def frame(person) -> str:
    """The shot, from the lowest body parts in frame."""
    if _has(person, 10, 13):
        return "full body"
    if _has(person, 9, 12):
        return "cowboy shot"
    if _has(person, 8, 11):
        return "upper body"
    shoulders = [person.point(i) for i in (2, 5) if person.point(i) is not None]
    if len(shoulders) == 2 and abs(shoulders[0][0] - shoulders[1][0]) < 0.55:
        return "upper body"
    return "portrait" if shoulders else "close-up"


def pose_words(person) -> list[str]:
    """A few words a tagger would use for the pose."""
    words = []
    nose = person.point(0)
    wrists_up = [w for w in (person.point(4), person.point(7)) if w is not None and nose is not None and w[1] < nose[1]]
    if len(wrists_up) == 2:
        words.append("arms up")
    elif wrists_up:
        words.append("hand up")
    neck, hips = person.point(1), [person.point(i) for i in (8, 11) if person.point(i) is not None]
    knees = [person.point(i) for i in (9, 12) if person.point(i) is not None]
    if neck is not None and hips and knees:
        torso = abs(np.mean([h[1] for h in hips]) - neck[1])
        drop = np.mean([k[1] for k in knees]) - np.mean([h[1] for h in hips])
        words.append("sitting" if drop < 0.35 * torso else "standing")
    facing = facing_words(person)
    return words + facing


def facing_words(person) -> list[str]:
    """'looking at viewer' when the nose sits well inside the ears (or eyes), 'profile' when it is
    outside them; nothing when the head's points are not there to tell."""
    nose = person.point(0)
    if nose is None:
        return []
    for pair in ((16, 17), (14, 15)):
        points = [person.point(i) for i in pair]
        if all(p is not None for p in points):
            low, high = sorted([points[0][0], points[1][0]])
            if high - low < 1e-3:
                continue
            where = (nose[0] - low) / (high - low)
            if 0.25 <= where <= 0.75:
                return ["looking at viewer"]
            return ["profile"] if where < 0 or where > 1 else ["looking to the side"]
    return []


def dominant_colours(image: np.ndarray, count: int = 3) -> list[str]:
    """Names of the largest colour clusters covering at least MIN_SHARE of the picture, largest
    first (clusters with one name added up)."""
    image = as_rgb(image)
    small = cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA).reshape(-1, 3).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    cv2.setRNGSeed(0)
    _, labels, centres = cv2.kmeans(small, 5, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    sizes = np.bincount(labels.ravel(), minlength=len(centres)) / len(labels)
    shares: dict[str, float] = {}
    for index in np.argsort(-sizes):
        name = colour_name(centres[index])
        shares[name] = shares.get(name, 0.0) + float(sizes[index])
    ranked = sorted(shares, key=lambda n: -shares[n])
    return [n for n in ranked if shares[n] >= MIN_SHARE][:count]


def colour_name(rgb: np.ndarray) -> str:
    """A plain colour name from hue, saturation and value: black, grey and white when there is
    little colour; brown for dark or dull reds, oranges and yellows."""
    r, g, b = (float(c) / 255 for c in rgb)
    high, low = max(r, g, b), min(r, g, b)
    chroma = high - low
    if high < 0.2:
        return "black"
    if chroma < 0.12 or chroma / high < 0.2:
        return "white" if high >= 0.75 else "grey"
    if high == r:
        hue = (60 * (g - b) / chroma) % 360
    elif high == g:
        hue = 60 * (b - r) / chroma + 120
    else:
        hue = 60 * (r - g) / chroma + 240
    name = next(n for limit, n in HUES if hue < limit)
    dull = high < 0.6 or chroma / high < 0.45
    if (name in ("orange", "yellow") and dull) or (name == "red" and high < 0.45):
        return "brown"
    return name


def clothes_colour(image: np.ndarray, person) -> str | None:
    """The colour of the torso (shoulders down to the hips, or 1.5 shoulder widths), when one
    colour covers most of it."""
    shoulders = [person.point(i) for i in (2, 5)]
    if any(p is None for p in shoulders):
        return None
    height, width = image.shape[:2]
    left, right = sorted([shoulders[0][0], shoulders[1][0]])
    top = max(shoulders[0][1], shoulders[1][1])
    hips = [person.point(i)[1] for i in (8, 11) if person.point(i) is not None]
    bottom = max(hips) if hips else top + 1.5 * (right - left) * width / height
    box = image[int(top * height):int(min(bottom, 1) * height), int(left * width):int(right * width)]
    if box.shape[0] < 8 or box.shape[1] < 8:
        return None
    pixels = cv2.resize(box, (32, 32), interpolation=cv2.INTER_AREA).reshape(-1, 3)
    names = [colour_name(p) for p in pixels]
    best = max(set(names), key=names.count)
    return best if names.count(best) >= 0.4 * len(names) else None


def is_greyscale(image: np.ndarray) -> bool:
    small = cv2.resize(as_rgb(image), (128, 128), interpolation=cv2.INTER_AREA)
    return float(cv2.cvtColor(small, cv2.COLOR_RGB2HSV)[:, :, 1].mean()) / 255 < GREY_SATURATION


def picture_kind(image: np.ndarray) -> str | None:
    """"lineart" (mostly paper, flat), "illustration" (large flat areas, little noise), "photo"
    (sensor noise, almost no flat area), or None when the measures disagree."""
    image = as_rgb(image)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (128, 128), interpolation=cv2.INTER_AREA)
    paper = max((small > 200).mean(), (small < 55).mean())
    flat = flat_share(grey)
    if is_greyscale(image) and paper > 0.6 and flat > 0.3:
        return "lineart"
    if flat >= 0.3:
        return "illustration"
    if flat < 0.15 and noise_level(grey) >= 0.5:
        return "photo"
    return None


def flat_share(grey: np.ndarray) -> float:
    """Share of pixels whose 3×3 neighbourhood is one exact value (flat fills, not photos)."""
    kernel = np.ones((3, 3), np.uint8)
    return float((cv2.dilate(grey, kernel) == cv2.erode(grey, kernel)).mean())


def noise_level(grey: np.ndarray) -> float:
    """Noise sigma by Immerkær's Laplacian-difference estimate (photos ≳ 0.5 grey levels)."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    return float(np.sqrt(np.pi / 2) / 6 * np.abs(cv2.filter2D(grey.astype(np.float32), -1, kernel)).mean())
