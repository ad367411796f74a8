"""Image → prompt (`kekong prompt describe`; A1111's "interrogate").

Always available offline — a structural description from kekong's own detectors: how many
people, the framing (close-up / upper body / cowboy shot / full body, from which keypoints are
in frame), pose words (standing, sitting, arms raised…), the dominant colours, and whether the
picture is line art or a photo. With caption and CLIP models on disk, the CLIP-interrogator
method (`kekong.prompt.interrogate`) adds a caption and CLIP-ranked tags.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from kekong.colours import delta_e, lab
from kekong.detect import run
from kekong.detect.openpose.keypoints import PoseResult

# colour name → RGB, for naming dominant colours (CSS values)
COLOUR_NAMES = {
    "white": (255, 255, 255), "black": (0, 0, 0), "grey": (128, 128, 128), "silver": (192, 192, 192),
    "red": (220, 20, 60), "dark red": (139, 0, 0), "orange": (255, 140, 0), "yellow": (255, 215, 0),
    "beige": (245, 222, 179), "brown": (139, 69, 19), "olive": (128, 128, 0), "green": (34, 139, 34),
    "dark green": (0, 100, 0), "teal": (0, 128, 128), "cyan": (0, 206, 209), "light blue": (135, 206, 235),
    "blue": (30, 80, 220), "navy": (0, 0, 128), "purple": (128, 0, 128), "pink": (255, 105, 180),
    "skin tone": (224, 172, 105),
}


@dataclass
class Description:
    tags: list[str]
    data: dict = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        return ", ".join(self.tags)


def describe_structure(image: np.ndarray) -> Description:
    """Tags about people, framing, pose, colours and kind of picture, from detectors only."""
    pose = PoseResult.from_json(run("openpose", image).data)
    people = pose.people
    tags: list[str] = []
    data: dict = {"people": len(people)}
    tags += {0: ["no humans"], 1: ["solo", "one person"], 2: ["two people"]}.get(len(people), ["group of people"])
    if people:
        main = max(people, key=_size)
        framing = frame(main)
        data["framing"] = framing
        tags.append(framing)
        words = pose_words(main)
        data["pose"] = words
        tags += words
    colours = dominant_colours(image)
    data["colours"] = colours
    kind = picture_kind(image)
    data["kind"] = kind
    tags += [kind] + ([f"{colours[0]} and {colours[1]}"] if len(colours) > 1 else colours[:1])
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
    eyes = [person.point(i) for i in (14, 15)]
    if nose is not None and all(e is not None for e in eyes):
        low, high = sorted([eyes[0][0], eyes[1][0]])
        if low <= nose[0] <= high:
            words.append("looking at viewer")
    elif nose is not None:
        words.append("looking to the side")
    return words


def dominant_colours(image: np.ndarray, count: int = 3) -> list[str]:
    """Names of the largest colour clusters, largest first (repeats merged)."""
    small = cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA).reshape(-1, 3).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    cv2.setRNGSeed(0)
    _, labels, centres = cv2.kmeans(small, 5, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    sizes = np.bincount(labels.ravel(), minlength=len(centres))
    names: list[str] = []
    for index in np.argsort(-sizes):
        name = colour_name(centres[index])
        if name not in names:
            names.append(name)
    return names[:count]


def colour_name(rgb: np.ndarray) -> str:
    table = list(COLOUR_NAMES.items())
    distances = delta_e(lab(np.array([c for _, c in table], np.float32)), lab(np.asarray(rgb, np.float32)))
    return table[int(np.argmin(distances))][0]


def picture_kind(image: np.ndarray) -> str:
    """"lineart" (few grey levels, mostly paper), "photo" (many colours, smooth) or "illustration"."""
    small = cv2.resize(image, (128, 128), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    saturation = hsv[:, :, 1].mean() / 255
    paper = max((grey > 200).mean(), (grey < 55).mean())
    if saturation < 0.1 and paper > 0.6:
        return "lineart"
    colours = len(np.unique(small.reshape(-1, 3) // 8, axis=0))
    return "photo" if colours > 400 else "illustration"  # flat-coloured pictures use few hundred at most
