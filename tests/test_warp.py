"""`kekong warp`: moving-least-squares warping of a photo to an edited OpenPose pose."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kekong.detect.openpose.keypoints import Person, PoseResult, empty
from kekong.detect.openpose.warp import MODES, mls, warp_pose
from kekong.errors import KekongError
from kekong.io import load_image, save_image
from tests.test_cli import kekong

SIZE = 256
# a standing figure (pixels on a SIZE² canvas): nose, neck, right/left shoulder-elbow-wrist, hips, knees, ankles
FIGURE = {0: (128, 50), 1: (128, 80), 2: (100, 80), 3: (90, 120), 4: (85, 155), 5: (156, 80), 6: (166, 120),
          7: (171, 155), 8: (110, 150), 9: (108, 195), 10: (106, 235), 11: (146, 150), 12: (148, 195),
          13: (150, 235)}


def pose_of(points: dict[int, tuple[float, float]], size: int = SIZE) -> PoseResult:
    body = empty(18)
    for index, (x, y) in points.items():
        body[index] = (x / size, y / size, 1.0)
    return PoseResult(people=[Person(body=body)], width=size, height=size)


def marked(points: dict[int, tuple[float, float]], size: int = SIZE) -> np.ndarray:
    """Grey canvas with a 3×3 dot of its own colour on each keypoint."""
    image = np.full((size, size, 3), 128, np.uint8)
    for index, (x, y) in points.items():
        image[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = (index * 15 + 20, 255 - index * 10, 0)
    return image


def dot_centre(image: np.ndarray, colour: tuple[int, int, int], near: tuple[float, float] | None = None,
               radius: int = 6) -> np.ndarray:
    """The centre of the dot of `colour` (within `radius` px of `near`: a big edit may leave a smeared
    copy where the limb was, which the mask marks)."""
    close = np.all(np.abs(image.astype(int) - colour) < 40, axis=2)
    if near is not None:
        yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
        close &= np.hypot(xx - near[0], yy - near[1]) <= radius
    ys, xs = np.nonzero(close)
    assert len(xs), f"dot {colour} is gone"
    weights = 1.0 / (1.0 + np.abs(image[ys, xs].astype(int) - colour).sum(axis=1))
    return np.array([np.average(xs, weights=weights), np.average(ys, weights=weights)])


def raised_right_arm() -> dict[int, tuple[float, float]]:
    edited = dict(FIGURE)
    edited[3], edited[4] = (70, 60), (60, 28)  # elbow and wrist swung up
    return edited


@pytest.mark.parametrize("mode", MODES)
def test_same_pose_gives_the_same_image(astronaut, mode):
    pose = pose_of({i: (x * 2, y * 2) for i, (x, y) in FIGURE.items()}, 512)
    result = warp_pose(astronaut, pose, pose, mode=mode)
    assert np.array_equal(result.image, astronaut)
    assert not result.mask.any()


@pytest.mark.parametrize("mode", MODES)
def test_handles_land_where_asked(mode):
    edited = raised_right_arm()
    image = marked(FIGURE)
    result = warp_pose(image, pose_of(FIGURE), pose_of(edited), mode=mode)
    for index in (3, 4, 7, 10):  # two moved, two held
        colour = (index * 15 + 20, 255 - index * 10, 0)
        assert np.allclose(dot_centre(result.image, colour, edited[index]), edited[index], atol=1.5), index
    assert not np.array_equal(result.image, image)


@pytest.mark.parametrize("mode", ["rigid", "similarity"])
@pytest.mark.parametrize("bone", [(2, 3), (3, 4)])
def test_a_turned_limb_moves_whole(bone, mode):
    """Dots along the upper arm / forearm land where the bone's own motion sends them (not only its ends):
    with three handles per bone they landed 3–5 px off or were smeared away."""
    edited = raised_right_arm()
    (p0, p1), (q0, q1) = (np.array([FIGURE[k] for k in bone], float), np.array([edited[k] for k in bone], float))
    image, colours = np.full((SIZE, SIZE, 3), 128, np.uint8), {}
    for k, s in enumerate((0.15, 0.35, 0.6, 0.85)):
        x, y = p0 + s * (p1 - p0)
        colours[s] = (40 + 50 * k, 250 - 40 * k, 30)
        image[round(y) - 1:round(y) + 2, round(x) - 1:round(x) + 2] = colours[s]
    out = warp_pose(image, pose_of(FIGURE), pose_of(edited), mode=mode).image
    for s, colour in colours.items():
        wanted = q0 + s * (q1 - q0)
        assert np.hypot(*(dot_centre(out, colour, wanted, radius=8) - wanted)) <= 2.75, s


def test_mls_interpolates_its_handles_and_keeps_a_translation():
    source = np.array([[10.0, 10.0], [50.0, 20.0], [30.0, 60.0], [70.0, 70.0]])
    target = source + np.array([[5, -3], [0, 4], [-6, 2], [3, 3]])
    for mode in MODES:
        assert np.allclose(mls(source, source, target, mode), target, atol=1e-6)
        shifted = mls(np.array([[40.0, 40.0]]), source, source + np.array([7, -2]), mode)
        assert np.allclose(shifted, [[47.0, 38.0]], atol=1e-6)  # a pure translation moves everything alike


def test_border_stays_pinned():
    yy, xx = np.mgrid[:SIZE, :SIZE]
    image = np.stack([xx, yy, (xx + yy) // 2], axis=2).astype(np.uint8)  # one level per pixel: values are places
    image[100:160, 60:110] = 255 - image[100:160, 60:110]  # a patch on the arm that moves
    result = warp_pose(image, pose_of(FIGURE), pose_of(raised_right_arm()))
    out, ref = result.image.astype(int), image.astype(int)
    frame = np.zeros((SIZE, SIZE), bool)
    frame[[0, -1]] = frame[:, [0, -1]] = True
    slide = np.abs(out - ref)[frame]
    assert slide.max() <= 2 and slide.mean() < 0.3  # the frame reads within 2 px of where it is (a wrist 28 px off)
    for x, y in ((0, 0), (SIZE - 1, 0), (0, SIZE - 1), (SIZE - 1, SIZE - 1)):
        assert np.array_equal(result.image[y, x], image[y, x])
    assert (np.abs(out - ref)[100:160, 60:110].max(axis=-1) > 8).mean() > 0.2  # the arm's area did change


def test_a_pin_holds_a_point_the_edit_would_move():
    edited = raised_right_arm()
    pin = (60, 90)  # beside the moving forearm
    image = marked(FIGURE)
    image[pin[1] - 1:pin[1] + 2, pin[0] - 1:pin[0] + 2] = (0, 0, 255)
    loose = warp_pose(image, pose_of(FIGURE), pose_of(edited))
    held = warp_pose(image, pose_of(FIGURE), pose_of(edited), pins=[pin])
    with pytest.raises(AssertionError, match="is gone"):
        dot_centre(loose.image, (0, 0, 255), pin, radius=3)  # without the pin, the point moves off
    assert np.abs(held.image[pin[1], pin[0]].astype(int) - (0, 0, 255)).max() < 20  # the pinned pixel reads itself


def test_uncovered_mask_marks_the_edit_only():
    result = warp_pose(marked(FIGURE), pose_of(FIGURE), pose_of(raised_right_arm()))
    assert set(np.unique(result.mask)) == {0, 255}
    assert result.mask.shape == (SIZE, SIZE)
    assert result.mask[20:140, 40:120].any()  # around the raised arm
    assert not result.mask[:, 180:].any() and not result.mask[215:].any()  # the left side and feet held


def test_several_people_each_follow_their_own_edit():
    left = {i: (x * 0.5, y) for i, (x, y) in FIGURE.items()}
    right = {i: (x * 0.5 + 128, y) for i, (x, y) in FIGURE.items()}
    left_edit, right_edit = dict(left), dict(right)
    left_edit[4] = (left[4][0] - 12, left[4][1] - 30)
    right_edit[7] = (right[7][0] + 12, right[7][1] - 30)

    def two(a, b):
        pose = pose_of(a)
        pose.people.append(pose_of(b).people[0])
        return pose

    image = np.full((SIZE, SIZE, 3), 128, np.uint8)
    for (x, y), colour in ((left[4], (255, 0, 0)), (right[7], (0, 0, 255))):
        image[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = colour
    result = warp_pose(image, two(left, right), two(left_edit, right_edit))
    assert np.allclose(dot_centre(result.image, (255, 0, 0), left_edit[4]), left_edit[4], atol=1.5)
    assert np.allclose(dot_centre(result.image, (0, 0, 255), right_edit[7]), right_edit[7], atol=1.5)
    with pytest.raises(KekongError, match="1 in the edited"):
        warp_pose(image, two(left, right), pose_of(left_edit))


def test_missing_keypoints_are_ignored():
    original, edited = pose_of(FIGURE), pose_of(raised_right_arm())
    original.people[0].body[[3, 4]] = np.nan  # the elbow and wrist are not in the photo's pose
    image = marked(FIGURE)
    assert np.array_equal(warp_pose(image, original, edited).image, image)


def test_cli_warps_and_writes_the_mask(tmp_path):
    save_image(marked(FIGURE), tmp_path / "figure.png")
    (tmp_path / "from.json").write_text(json.dumps(pose_of(FIGURE).to_json()))
    (tmp_path / "to.json").write_text(json.dumps(pose_of(raised_right_arm()).to_json()))
    done = kekong("warp", "figure.png", "--from", "from.json", "--to", "to.json", "-o", "out.png",
                  "--mode", "similarity", "--mask-out", "mask.png", "--pin", "250,250", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = load_image(tmp_path / "out.png")
    assert np.allclose(dot_centre(out, (4 * 15 + 20, 255 - 40, 0), (60, 28)), (60, 28), atol=1.0)
    assert load_image(tmp_path / "mask.png")[20:140, 40:120].any()


@pytest.mark.parametrize(("files", "args", "message"), [
    ({"to.json": "{not json"}, ["figure.png", "--from", "to.json"], "--to to.json: pose JSON is malformed"),
    ({"to.json": "two"}, ["figure.png", "--from", "from.json"], "the poses differ in people: 1 in the original, 2"),
    ({"to.json": "one"}, ["broken.png", "--from", "from.json"], "broken.png"),
    ({"to.json": "one"}, ["figure.png", "--from", "from.json", "--mode", "bendy"], "--mode 'bendy'"),
])
def test_cli_bad_input_is_one_error_line(tmp_path, files, args, message):
    save_image(marked(FIGURE), tmp_path / "figure.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    one = pose_of(FIGURE).to_json()
    (tmp_path / "from.json").write_text(json.dumps(one))
    texts = {"one": json.dumps(one), "two": json.dumps({**one, "people": one["people"] * 2})}
    for name, text in files.items():
        (tmp_path / name).write_text(texts.get(text, text))
    done = kekong("warp", *args, "--to", "to.json", "-o", "out.png", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr
    assert not (tmp_path / "out.png").exists()
