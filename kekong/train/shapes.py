"""The synthetic shapes dataset (`kekong data shapes`): filled shapes on plain backgrounds, with
their outlines (crisp, or jittered like a scribble) as conditions and the colours in the prompt.

Colours are CSS colours; names of the same colour (aqua/cyan, fuchsia/magenta, gray/grey) are
one class. Fill and background are always far apart in CIELAB, so the controllability benchmark
can tell shape pixels from background pixels by colour.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kekong.colours import delta_e, lab

# class → (RGB, names the prompt may use)
COLOURS: dict[str, tuple[tuple[int, int, int], tuple[str, ...]]] = {
    "red": ((255, 0, 0), ("red",)),
    "orange": ((255, 165, 0), ("orange",)),
    "yellow": ((255, 255, 0), ("yellow",)),
    "lime": ((0, 255, 0), ("lime",)),
    "green": ((0, 128, 0), ("green",)),
    "cyan": ((0, 255, 255), ("cyan", "aqua")),
    "light blue": ((173, 216, 230), ("light blue",)),
    "blue": ((0, 0, 255), ("blue",)),
    "navy": ((0, 0, 128), ("navy",)),
    "purple": ((128, 0, 128), ("purple",)),
    "magenta": ((255, 0, 255), ("magenta", "fuchsia")),
    "pink": ((255, 192, 203), ("pink",)),
    "brown": ((165, 42, 42), ("brown",)),
    "white": ((255, 255, 255), ("white",)),
    "gray": ((128, 128, 128), ("gray", "grey")),
    "black": ((0, 0, 0), ("black",)),
}
SHAPES = ("circle", "square", "triangle", "star", "heart", "hexagon")
MIN_DELTA_E = 40.0  # fill vs background, CIELAB (CIE76)


def colour_of(name: str) -> tuple[int, int, int]:
    for rgb, names in COLOURS.values():
        if name in names:
            return rgb
    raise KeyError(name)


@dataclass
class Shape:
    kind: str
    centre: tuple[float, float]
    radius: float
    angle: float
    colour: str  # the name used in the prompt

    def polygon(self) -> np.ndarray:
        """Outline points (N, 2) in pixels."""
        cx, cy = self.centre
        r = self.radius
        if self.kind == "circle":
            t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
            points = np.stack([np.cos(t), np.sin(t)], 1)
        elif self.kind == "square":
            points = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.8
        elif self.kind == "triangle":
            t = np.array([-np.pi / 2, np.pi / 6, 5 * np.pi / 6])
            points = np.stack([np.cos(t), np.sin(t)], 1) * 1.05
        elif self.kind == "hexagon":
            t = np.arange(6) * np.pi / 3
            points = np.stack([np.cos(t), np.sin(t)], 1)
        elif self.kind == "star":
            t = np.arange(10) * np.pi / 5 - np.pi / 2
            radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
            points = np.stack([np.cos(t) * radii, np.sin(t) * radii], 1)
        else:  # heart
            t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
            x = 16 * np.sin(t) ** 3
            y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
            points = np.stack([x, y + 2.5], 1) / 17.0
        c, s = math.cos(self.angle), math.sin(self.angle)
        rotated = points @ np.array([[c, s], [-s, c]])
        return rotated * r + np.array([cx, cy])


@dataclass
class Sample:
    target: np.ndarray  # uint8 HxWx3
    outline: np.ndarray  # uint8 HxWx3, white outline on black
    scribble: np.ndarray  # uint8 HxWx3, jittered outline (white on black)
    filled: np.ndarray  # bool HxW: where the shapes are
    masks: list[np.ndarray]  # bool HxW per shape (later shapes cover earlier ones)
    prompt: str
    shapes: list[Shape]
    background: str


def _points(shape: Shape, scale: int) -> np.ndarray:
    return np.round(shape.polygon() * scale).astype(np.int32)


def draw(shapes: list[Shape], background: str, size: int, rng: np.random.Generator) -> Sample:
    """Render target, outline, scribble and fill mask (drawn at 4× and reduced: smooth edges)."""
    up = 4
    big = np.empty((size * up, size * up, 3), np.uint8)
    big[:] = colour_of(background)
    mask = np.zeros((size * up, size * up), np.uint8)
    outline = np.zeros((size, size), np.uint8)
    scribble = np.zeros((size, size), np.uint8)
    for shape in shapes:
        cv2.fillPoly(big, [_points(shape, up)], colour_of(shape.colour), lineType=cv2.LINE_AA)
        cv2.fillPoly(mask, [_points(shape, up)], 255)
        cv2.polylines(outline, [_points(shape, 1)], True, 255, 1, lineType=cv2.LINE_8)
        jitter = shape.polygon() + rng.normal(0, shape.radius * 0.04, (len(shape.polygon()), 2))
        cv2.polylines(scribble, [np.round(jitter).astype(np.int32)], True, 255, int(rng.integers(1, 3)),
                      lineType=cv2.LINE_AA)
    target = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
    filled = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA) >= 128
    masks = []
    for index, shape in enumerate(shapes):
        own = np.zeros((size * up, size * up), np.uint8)
        cv2.fillPoly(own, [_points(shape, up)], 255)
        for later in shapes[index + 1:]:
            cv2.fillPoly(own, [_points(later, up)], 0)
        masks.append(cv2.resize(own, (size, size), interpolation=cv2.INTER_AREA) >= 128)
    prompt = describe(shapes, background)
    grey3 = lambda a: np.repeat(a[:, :, None], 3, axis=2)  # noqa: E731
    return Sample(target, grey3(outline), grey3(np.where(scribble > 96, 255, 0).astype(np.uint8)), filled, masks,
                  prompt, shapes, background)


def describe(shapes: list[Shape], background: str) -> str:
    parts = " and ".join(f"{article(s.colour)} {s.colour} {s.kind}" for s in shapes)
    return f"{parts} on {article(background)} {background} background"


def article(word: str) -> str:
    """The article before a colour name: "an aqua heart", "a red star"."""
    return "an" if word[0] in "aeiou" else "a"


def _class(name: str) -> str:
    return next(cls for cls, (_, names) in COLOURS.items() if name in names)


def random_sample(rng: np.random.Generator, size: int = 64, two_shapes: float = 0.3) -> Sample:
    """One sample: 1 or 2 shapes (radius size/4…0.34·size alone, ≥ size/4.6 in pairs) anywhere
    they fit, far-apart colours. Sizes and positions vary enough that two random samples overlap
    little (IoU ≈ 0.26): a model ignoring its condition cannot score well by chance."""
    classes = list(COLOURS)
    background_class = classes[rng.integers(len(classes))]
    bg_lab = lab(COLOURS[background_class][0])
    usable = [c for c in classes if delta_e(lab(COLOURS[c][0]), bg_lab) >= MIN_DELTA_E]
    count = 2 if rng.random() < two_shapes else 1
    side_by_side = rng.random() < 0.5  # a pair sits left/right or top/bottom
    shapes = []
    for index in range(count):
        kind = SHAPES[rng.integers(len(SHAPES))]
        colour_class = usable[rng.integers(len(usable))]
        names = COLOURS[colour_class][1]
        colour = names[rng.integers(len(names))]
        if count == 1:
            radius = rng.uniform(size / 4, size * 0.34)
            margin = radius + 1
            centre = (rng.uniform(margin, size - margin), rng.uniform(margin, size - margin))
        else:
            radius = rng.uniform(size / 4.6, size / 4)
            slot, across = size / 4 + index * size / 2, rng.uniform(radius + 1, size - radius - 1)
            centre = (slot, across) if side_by_side else (across, slot)
        shapes.append(Shape(kind, centre, radius, float(rng.uniform(-0.3, 0.3)), colour))
    bg_names = COLOURS[background_class][1]
    return draw(shapes, bg_names[rng.integers(len(bg_names))], size, rng)


def write_dataset(folder: Path, count: int, size: int = 64, seed: int = 0) -> Path:
    """The fill layout: source/ (conditions), target/, prompt.json (JSON lines), plus scribble/."""
    from kekong.io import save_image, write_atomic

    folder = Path(folder)
    for sub in ("source", "scribble", "target"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for index in range(count):
        sample = random_sample(rng, size)
        name = f"{index:06d}.png"
        save_image(sample.outline, folder / "source" / name)
        save_image(sample.scribble, folder / "scribble" / name)
        save_image(sample.target, folder / "target" / name)
        lines.append(json.dumps({"source": f"source/{name}", "target": f"target/{name}", "prompt": sample.prompt,
                                 "scribble": f"scribble/{name}"}))
    write_atomic(folder / "prompt.json", ("\n".join(lines) + "\n").encode())
    return folder
