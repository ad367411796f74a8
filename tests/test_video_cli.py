"""`kekong video` end to end with the shipped kekong-shapes model: frames generated with the
shapes ControlNet on each source frame, an MP4 at the source's rate, `kekong verify` on it; the
video command's options come from the same declarations as generate's and VideoSettings'."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from typer.testing import CliRunner

from kekong.cli import app

pytest.importorskip("av")


def star_clip(path, count: int = 3) -> None:
    from kekong.train.shapes import Shape, draw
    from kekong.video.encode import encode_mp4

    rng = np.random.default_rng(0)
    frames = [draw([Shape("star", (20 + 4 * t, 30), 14 + t, 0.1, "red")], "white", 64, rng).target
              for t in range(count)]
    path.write_bytes(encode_mp4(frames, Fraction(12)))


def test_video_command_writes_an_mp4_with_provenance_and_resumes(tmp_path):
    from kekong.video.encode import decode_all

    star_clip(tmp_path / "clip.mp4")
    out = tmp_path / "out.mp4"
    args = ["video", str(tmp_path / "clip.mp4"), "-o", str(out), "-c", "canny,res=64", "--steps", "2",
            "--seed", "5", "--flow-strength", "0.5", "a red star on a white background"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 frames at 64x64, 12 fps" in result.output
    frames, rate, _ = decode_all(out)
    assert len(frames) == 3 and rate == 12
    assert (tmp_path / "out.frames" / "000002.png").is_file()

    again = CliRunner().invoke(app, args)  # everything done: nothing generated again
    assert again.exit_code == 0 and "3 frames were already done" in again.output

    verified = CliRunner().invoke(app, ["verify", "--json", str(out)])
    [verdict] = json.loads(verified.output)
    assert verdict["outcome"] == "found" and verdict["c2pa"]["state"] == "valid"
    video = verdict["metadata"]["video"]
    assert video["settings"]["flow_strength"] == 0.5 and video["seed"] == 5 and video["frames"] == 3
    assert verdict["metadata"]["recipe"]["request"]["controls"][0]["module"] == "canny"


def test_bad_source_is_a_clear_error_not_a_traceback(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    result = CliRunner().invoke(app, ["video", str(bad), "-o", str(tmp_path / "o.mp4"), "-c", "canny", "x"])
    assert result.exit_code != 0 and "not a video" in str(result.exception or result.output)
    assert not (tmp_path / "o.frames").exists()  # refused before any frame


def test_video_options_have_their_declared_bounds_and_generate_s_help():
    import typer.main

    from kekong.cli.video import VIDEO_FLAGS
    from kekong.declaration import spec
    from kekong.video.spec import VideoSettings

    commands = typer.main.get_command(app).commands
    video = {opt: p for p in commands["video"].params for opt in p.opts}
    generate = {opt: p for p in commands["generate"].params for opt in p.opts}
    for name, flags in VIDEO_FLAGS.items():
        field, param = spec(name, VideoSettings), video[flags[0].split("/")[0]]
        assert (param.min, param.max) == (field.ge, field.le), name
        assert param.default is None, name
    for flag in ("--steps", "--cfg", "--seed", "--sampler", "--model", "--lora", "--no-c2pa"):
        assert video[flag].help == generate[flag].help and (video[flag].min, video[flag].max) == \
            (generate[flag].min, generate[flag].max), flag
    assert "--init" not in video and "--hires" not in video  # per-image features are not offered


def test_a_size_with_a_zero_side_is_refused_not_ignored(tmp_path):
    for size in ("64x0", "0x0"):  # were run at the source's shape, as if --size was not given
        result = CliRunner().invoke(app, ["video", str(tmp_path), "-o", str(tmp_path / "o.mp4"), "--size", size, "x"])
        assert result.exit_code != 0 and "both sides must be given" in str(result.exception or result.output)
