"""The layered pose warp (`kekong warp --layered`): a moved limb is its own layer, the hole it leaves is masked."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kekong.detect.openpose.warp import warp_pose
from kekong.detect.openpose.warp_layers import moved_chains
from tests.test_warp import FIGURE, SIZE, dot_centre, pose_of

ANGLE = -70.0  # degrees the right arm turns about the shoulder (raised towards the head's side)
ARM = (2, 3, 4)  # right shoulder, elbow, wrist
SPOTS = (0.25, 0.5, 0.75)  # where along each bone the test's dots sit
RED = (220, 30, 30)


def turned(points: dict[int, tuple[float, float]], about: int, moving: tuple[int, ...], degrees: float,
           ) -> dict[int, tuple[float, float]]:
    a = math.radians(degrees)
    cx, cy = points[about]
    out = dict(points)
    for k in moving:
        x, y = points[k][0] - cx, points[k][1] - cy
        out[k] = (cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a))
    return out


EDITED = turned(FIGURE, 2, (3, 4), ANGLE)


def along(points: dict[int, tuple[float, float]]) -> dict[tuple[int, float], np.ndarray]:
    """Points at SPOTS along the upper arm and the forearm."""
    out = {}
    for bone in ((2, 3), (3, 4)):
        p, q = (np.array(points[k], float) for k in bone)
        for s in SPOTS:
            out[(bone[0], s)] = p + s * (q - p)
    return out


def colour_of(key: tuple[int, float]) -> tuple[int, int, int]:
    bone, s = key
    return (40 + 60 * SPOTS.index(s), 250 - 100 * (bone == 3), 200)


def body_picture(texture: bool = False) -> np.ndarray:
    """A grey (or noisy) canvas with a torso, a red right arm (8 px thick) and coloured dots along that arm."""
    import cv2

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) if texture else np.full((SIZE, SIZE, 3), 128,
                                                                                          np.uint8)
    cv2.rectangle(image, (105, 78), (151, 150), (60, 90, 160), -1)
    for i, j in ((2, 3), (3, 4)):
        cv2.line(image, tuple(int(v) for v in FIGURE[i]), tuple(int(v) for v in FIGURE[j]), RED, 8)
    for key, (x, y) in along(FIGURE).items():
        image[round(y) - 1:round(y) + 2, round(x) - 1:round(x) + 2] = colour_of(key)
    return image


def test_a_moved_limb_is_its_own_layer():
    before, after = pose_of(FIGURE), pose_of(EDITED)
    assert moved_chains(before.people[0], after.people[0], np.array([SIZE, SIZE], float)) == ["right arm"]
    result = warp_pose(body_picture(), before, after, layered=True)
    for key, wanted in along(EDITED).items():  # every dot along the arm lands where the arm's turn sends it
        assert np.hypot(*(dot_centre(result.image, colour_of(key), wanted, radius=6) - wanted)) <= 1.5, key
    for key, (x, y) in along(FIGURE).items():  # where the arm was: no red left, and in the mask
        if key[0] == 3:  # the forearm (the upper arm's root stays under the moved arm near the shoulder)
            x, y = round(x), round(y)
            assert result.mask[y, x] == 255, key
            r, g, b = result.image[y, x].astype(int)
            assert not (r > 180 and g < 80 and b < 80), (key, (r, g, b))


def test_the_layer_does_not_drag_the_body():
    """The torso and the background far from the old and the new arm keep their exact pixels (the plain MLS
    warp moves them)."""
    image = body_picture(texture=True)
    layered = warp_pose(image, pose_of(FIGURE), pose_of(EDITED), layered=True)
    plain = warp_pose(image, pose_of(FIGURE), pose_of(EDITED))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    near = np.zeros((SIZE, SIZE), bool)
    for points in (FIGURE, EDITED):
        for i, j in ((2, 3), (3, 4)):
            p, q = np.array(points[i], float), np.array(points[j], float)
            t = np.clip(((xx - p[0]) * (q - p)[0] + (yy - p[1]) * (q - p)[1]) / ((q - p) @ (q - p)), 0, 1.6)
            near |= np.hypot(xx - p[0] - t * (q - p)[0], yy - p[1] - t * (q - p)[1]) < 24
    far = ~near
    assert np.array_equal(layered.image[far], image[far])
    assert not layered.mask[far].any()
    assert (plain.image[far] != image[far]).any(axis=-1).sum() > 500  # the plain warp does move them


def test_the_person_mask_narrows_the_layer():
    """A spot beside the forearm, inside its capsule but outside the person's mask, stays where it is."""
    image = body_picture()
    p, q = np.array(FIGURE[3], float), np.array(FIGURE[4], float)
    normal = np.array([-(q - p)[1], (q - p)[0]]) / np.hypot(*(q - p))
    x, y = np.rint((p + q) / 2 + 6.5 * normal).astype(int)  # 6.5 px off the forearm's axis (radius 7.7)
    image[y - 1:y + 2, x - 1:x + 2] = (0, 0, 255)
    person = np.zeros((SIZE, SIZE), np.float32)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    person[np.hypot(xx - x, yy - y) > 2.5] = 1.0  # everything is "person" but the spot
    loose = warp_pose(image, pose_of(FIGURE), pose_of(EDITED), layered=True)
    held = warp_pose(image, pose_of(FIGURE), pose_of(EDITED), layered=True, person_mask=person)
    assert np.abs(held.image[y, x].astype(int) - (0, 0, 255)).max() < 30  # kept in the background
    assert np.abs(loose.image[y, x].astype(int) - (0, 0, 255)).max() > 100  # without the mask it moved off


@pytest.mark.parametrize("mode", ["rigid", "similarity", "affine"])
def test_no_limb_moved_is_the_plain_warp(astronaut, mode):
    same = pose_of({i: (x * 2, y * 2) for i, (x, y) in FIGURE.items()}, 512)
    assert np.array_equal(warp_pose(astronaut, same, same, mode=mode, layered=True).image, astronaut)
    shifted = pose_of({i: (x * 2 + 10, y * 2 + 4) for i, (x, y) in FIGURE.items()}, 512)  # the whole person moves
    layered = warp_pose(astronaut, same, shifted, mode=mode, layered=True)
    plain = warp_pose(astronaut, same, shifted, mode=mode)
    assert np.array_equal(layered.image, plain.image) and np.array_equal(layered.mask, plain.mask)


def test_cli_warp_is_layered_unless_told(tmp_path):
    import json

    from kekong.io import load_image, save_image
    from tests.test_cli import kekong

    save_image(body_picture(), tmp_path / "figure.png")
    (tmp_path / "from.json").write_text(json.dumps(pose_of(FIGURE).to_json()))
    (tmp_path / "to.json").write_text(json.dumps(pose_of(EDITED).to_json()))
    outputs = {}
    for flag, layered in ((None, True), ("--no-layered", False)):
        args = ["warp", "figure.png", "--from", "from.json", "--to", "to.json", "-o", "out.png", "--mask-out",
                "mask.png", *([flag] if flag else [])]
        done = kekong(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert ("layered" in done.stdout) == layered
        mask, out = load_image(tmp_path / "mask.png"), load_image(tmp_path / "out.png")
        expected = warp_pose(body_picture(), pose_of(FIGURE), pose_of(EDITED), layered=layered)
        assert (np.abs(out.astype(int) - expected.image).max(axis=-1) > 2).mean() < 0.005  # JSON rounds the poses
        mask = mask.max(axis=-1) if mask.ndim == 3 else mask
        assert (mask != expected.mask).mean() < 0.005
        outputs[layered] = out
    assert (np.abs(outputs[True].astype(int) - outputs[False]).max(axis=-1) > 30).mean() > 0.01  # not the same warp
