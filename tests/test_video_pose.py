"""OpenPose units in a video run: keypoints found on each source frame, smoothed across frames
(One-Euro) and drawn as the unit's ready map, so the detector's jitter does not reach the map."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from kekong.io import load_image, save_image
from kekong.video import run as video_run
from kekong.video.spec import build_settings


@pytest.fixture
def jittery_person(tmp_path, astronaut):
    """8 frames of the same person, each shifted by a random pixel or two and noised: a still
    subject whose detected keypoints jitter."""
    rng = np.random.default_rng(2)
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    for t in range(8):
        dx, dy = rng.uniform(-2, 2, 2)
        moved = cv2.warpAffine(small, np.float32([[1, 0, dx], [0, 1, dy]]), (256, 256), borderMode=cv2.BORDER_REFLECT)
        noisy = np.clip(moved + rng.normal(0, 6, moved.shape), 0, 255).astype(np.uint8)
        save_image(noisy, tmp_path / "src" / f"{t:02d}.png")
    return tmp_path / "src"


def test_pose_units_get_maps_drawn_from_smoothed_keypoints(tmp_path, jittery_person, monkeypatch):
    from kekong.detect import run as detect
    from kekong.detect.openpose.keypoints import PoseResult

    requests = []
    monkeypatch.setattr("kekong.generation.pipeline.generate",
                        lambda request, on_step=None: requests.append(request) or
                        [SimpleNamespace(image=np.zeros((256, 256, 3), np.uint8))])
    monkeypatch.setattr("kekong.provenance.recipe.build_recipe", lambda generated: {"kekong_recipe": 1})
    fields = {"prompt": "an astronaut", "width": 256, "height": 256, "seed": 1,
              "controls": [{"module": "openpose", "model": "control_v11p_sd15_openpose", "res": 256}]}
    settings = build_settings(fps=24, flow_strength=0, smoothing_cutoff=0.5, smoothing_beta=0.0)
    planned = video_run.plan(jittery_person, tmp_path / "pose.mp4", settings, fields)
    video_run.run(planned)
    assert len(requests) == 8
    unit = requests[3].controls[0]
    assert unit.module == "none" and unit.model == "control_v11p_sd15_openpose" and "maps" in unit.image
    drawn = load_image(unit.image)
    assert drawn.shape == (256, 256, 3) and drawn.max() > 0  # a skeleton was drawn

    def nose(points: PoseResult) -> np.ndarray:
        return points.people[0].body[0, :2] * 256

    raw = [nose(PoseResult.from_json(detect("openpose", load_image(planned.source_path(t)), res=256).data))
           for t in range(8)]
    from kekong.video.smooth import PoseSmoother

    smoother = PoseSmoother(0.5, 0.0)
    smoothed = [nose(smoother(PoseResult.from_json(detect("openpose", load_image(planned.source_path(t)),
                                                          res=256).data), 1 / 24)) for t in range(8)]
    raw_jitter = np.linalg.norm(np.diff(raw, axis=0), axis=1).mean()
    smooth_jitter = np.linalg.norm(np.diff(smoothed, axis=0), axis=1).mean()
    assert raw_jitter > 0.3 and smooth_jitter < 0.5 * raw_jitter
