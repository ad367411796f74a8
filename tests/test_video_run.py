"""The video run: frames written as they finish, a re-run skips them, the temporal switches reach
each frame's request; the MP4's provenance (C2PA manifest, recipe, watermark in every frame) reads
back with `kekong verify`, also after a re-encode at a lower bitrate."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from kekong.errors import KekongError, ParameterError
from kekong.io import load_image, save_image
from kekong.video import run as video_run
from kekong.video.spec import build_settings

pytest.importorskip("av")


def source_folder(path, count: int = 4, size: int = 64) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size, size, 3)).astype(np.uint8)
    import cv2

    base = cv2.GaussianBlur(base, (0, 0), 1.5)
    for t in range(count):
        save_image(np.roll(base, 2 * t, axis=1), path / f"{t:03d}.png")


@pytest.fixture
def fake_generate(monkeypatch):
    """generate() replaced by one that records each request and returns the frame's control image."""
    calls = []

    def fake(request, on_step=None):
        calls.append(request)
        return [SimpleNamespace(image=load_image(request.controls[0].image))]

    monkeypatch.setattr("kekong.generation.pipeline.generate", fake)
    monkeypatch.setattr("kekong.provenance.recipe.build_recipe", lambda generated: {"kekong_recipe": 1})
    return calls


FIELDS = {"prompt": "a red star", "seed": -1, "controls": [{"module": "canny", "res": 64}], "width": 64, "height": 64}


def test_frames_are_written_and_a_rerun_skips_them(tmp_path, fake_generate):
    source_folder(tmp_path / "src")
    out = tmp_path / "out.mp4"
    settings = build_settings(fps=8, flow_strength=0.5, reference=0.4)
    planned = video_run.plan(tmp_path / "src", out, settings, FIELDS)
    done = []
    video_run.run(planned, on_frame=done.append)
    assert len(fake_generate) == 4 and [d.done for d in done] == [1, 2, 3, 4]
    assert all(planned.frame_path(i).is_file() for i in range(4))
    first, later = fake_generate[0], fake_generate[2]
    assert first.init_image is None and [u.module for u in first.controls] == ["canny"]
    assert later.init_image.endswith("start/000002.png") and later.denoising_strength == 0.5  # flow-warped start
    assert [u.module for u in later.controls] == ["canny", "reference_only"]  # the key-frame reference
    assert later.controls[1].image.endswith("000000.png") and later.controls[1].weight == 0.4
    assert len({r.seed for r in fake_generate}) == 1  # the same noise for every frame
    seed = planned.seed

    planned.frame_path(2).unlink()
    planned.frame_path(3).unlink()
    again = video_run.plan(tmp_path / "src", out, settings, FIELDS)  # seed -1 again: the recorded one is kept
    assert again.seed == seed
    done.clear()
    video_run.run(again, on_frame=done.append)
    assert len(fake_generate) == 6  # only frames 2 and 3 again
    assert [d.skipped for d in done] == [True, True, False, False]
    assert done[-1].seconds_left == 0

    with pytest.raises(KekongError, match="holds frames of another run"):
        video_run.plan(tmp_path / "src", out, build_settings(fps=8, flow_strength=0.2), FIELDS)


def test_switches_off_give_plain_per_frame_requests(tmp_path, fake_generate):
    source_folder(tmp_path / "src", 3)
    settings = build_settings(fps=8, flow_strength=0, reference=0, same_noise=False)
    planned = video_run.plan(tmp_path / "src", tmp_path / "plain.mp4", settings, {**FIELDS, "seed": 10})
    video_run.run(planned)
    assert [r.seed for r in fake_generate] == [10, 11, 12]
    assert all(r.init_image is None and len(r.controls) == 1 for r in fake_generate)


def test_per_image_features_are_refused_before_any_frame(tmp_path):
    source_folder(tmp_path / "src", 2)
    for extra, words in (({"init_image": "x.png"}, "init_image is not for video"),
                         ({"batch_size": 2}, "batch_size and batch_count are 1"),
                         ({"controls": [{"module": "reference_only"}]}, "key-frame reference is a reference_only")):
        with pytest.raises(ParameterError, match=words):
            video_run.plan(tmp_path / "src", tmp_path / "o.mp4", build_settings(reference=0.5), {**FIELDS, **extra})


def marked_video(tmp_path, count: int = 5):
    """A 256 px run's folder, its frames in place, written as the MP4 (provenance on)."""
    from kekong.video.record import write_video

    source_folder(tmp_path / "src", count, 256)
    planned = video_run.plan(tmp_path / "src", tmp_path / "clip.mp4", build_settings(fps=10),
                             {**FIELDS, "width": 256, "height": 256})
    planned.folder.mkdir()
    (planned.folder / "recipe.json").write_text(json.dumps({"kekong_recipe": 1, "request": {"prompt": "x"}}))
    for position in range(count):
        save_image(load_image(tmp_path / "src" / f"{position:03d}.png"), planned.frame_path(position))
        save_image(load_image(tmp_path / "src" / f"{position:03d}.png"), planned.source_path(position))
    record = write_video(planned, tmp_path / "clip.mp4")
    return tmp_path / "clip.mp4", record


def test_verify_reads_the_manifest_recipe_and_watermark_of_an_mp4(tmp_path):
    from kekong.provenance.verify import Outcome
    from kekong.video.verify import verify_video

    path, record = marked_video(tmp_path)
    verdict = verify_video(path)
    assert verdict.outcome == Outcome.FOUND
    assert verdict.c2pa["state"] == "valid" and "c2pa.edited" in verdict.c2pa["actions"]
    assert verdict.c2pa["kekong"]["watermark"] == record["watermark"]
    assert verdict.watermark["found"] and verdict.watermark["id"] == record["watermark"]
    assert verdict.watermark["frames_with_id"] > verdict.watermark["sampled"] / 2
    video = verdict.metadata["video"]
    assert video["frames"] == 5 and video["settings"]["flow_strength"] == 0.3 and video["rate"] == "10"


def test_the_watermark_survives_a_re_encode_at_a_lower_bitrate(tmp_path):
    from kekong.video.encode import decode_all, encode_mp4
    from kekong.video.verify import read_watermark, sample_frames

    path, record = marked_video(tmp_path)
    frames, rate, _ = decode_all(path)
    smaller = encode_mp4(frames, rate, bit_rate=400_000)  # ≈ 0.6 bit per pixel at 256² and 10 fps
    assert len(smaller) < 0.8 * path.stat().st_size
    sampled, total = sample_frames(smaller)
    mark = read_watermark(sampled)
    assert total == 5 and mark["found"] and mark["id"] == record["watermark"]


def test_verify_refuses_what_is_not_a_video(tmp_path):
    from kekong.provenance.verify import Outcome
    from kekong.video.verify import verify_video

    bad = tmp_path / "bad.mp4"
    bad.write_text("no video here")
    verdict = verify_video(bad)
    assert verdict.outcome == Outcome.UNREADABLE and "not a video" in verdict.error


def test_a_flow_strength_that_leaves_no_step_is_refused_before_frame_0(tmp_path, fake_generate):
    source_folder(tmp_path / "src", 2)
    with pytest.raises(ParameterError, match=r"denoising strength 0.3 with 2 steps leaves no step"):
        video_run.plan(tmp_path / "src", tmp_path / "o.mp4", build_settings(flow_strength=0.3),
                       {**FIELDS, "steps": 2})
    assert not fake_generate
