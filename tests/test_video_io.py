"""Video in and out: decode/encode round trip, audio copied through, trimming, and bad sources
refused with a clear message before any frame is generated."""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import pytest

from kekong.errors import ImageError, ParameterError
from kekong.io import save_image
from kekong.video import decode
from kekong.video.encode import decode_all, encode_mp4
from kekong.video.spec import VideoSettings, build_settings

pytest.importorskip("av")


def moving_square(count: int = 6, size: int = 64) -> list[np.ndarray]:
    frames = []
    for t in range(count):
        frame = np.full((size, size, 3), 230, np.uint8)
        frame[20:40, 8 + 4 * t:28 + 4 * t] = (200, 30, 30)
        frames.append(frame)
    return frames


def with_audio(path, seconds: float = 1.0) -> None:
    """An MP4 with a video stream (12 fps) and an AAC sine."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=12)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=22050)
        for index, frame in enumerate(moving_square(int(12 * seconds))):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = index
            out.mux(video.encode(picture))
        out.mux(video.encode())
        samples = (np.sin(np.arange(int(22050 * seconds)) / 10) * 0.3).astype(np.float32)[None, :]
        chunk = 1024
        for start in range(0, samples.shape[1] - chunk, chunk):
            sound = av.AudioFrame.from_ndarray(samples[:, start:start + chunk], format="flt", layout="mono")
            sound.sample_rate, sound.pts = 22050, start
            out.mux(audio.encode(sound))
        out.mux(audio.encode())


def test_round_trip_keeps_frames_rate_and_size(tmp_path):
    frames = moving_square()
    path = tmp_path / "clip.mp4"
    path.write_bytes(encode_mp4(frames, Fraction(12)))
    info = decode.probe(path, VideoSettings())
    assert (info.width, info.height, info.frames, info.rate, info.kind) == (64, 64, 6, Fraction(12), "video")
    back = [image for _, image in decode.frames(info, list(range(6)))]
    assert len(back) == 6
    for before, after in zip(frames, back, strict=True):
        assert np.abs(before.astype(int) - after.astype(int)).mean() < 3  # near-lossless at the default CRF
    assert decode_all(path)[1] == 12


def test_ntsc_rate_is_kept_exactly(tmp_path):
    path = tmp_path / "ntsc.mp4"
    path.write_bytes(encode_mp4(moving_square(4), Fraction(30000, 1001)))
    assert decode.probe(path, VideoSettings()).rate == Fraction(30000, 1001)


def test_audio_is_copied_through_for_the_frames_kept(tmp_path):
    import av

    source = tmp_path / "talk.mp4"
    with_audio(source, 1.0)
    info = decode.probe(source, VideoSettings())
    assert info.has_audio
    data = encode_mp4(moving_square(6), Fraction(12), source, (0.25, 0.75))
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.audio and container.streams.audio[0].codec_context.name == "aac"
        packets = [p for p in container.demux(container.streams.audio[0]) if p.size]
        length = sum(p.duration for p in packets) * container.streams.audio[0].time_base
    assert 0.35 < float(length) < 0.65  # half a second of the source's sound, not all of it
    assert not decode_all(encode_mp4(moving_square(2), Fraction(12)))[2]  # none when there is none


def test_gif_and_frame_folder_sources(tmp_path):
    from PIL import Image

    frames = moving_square(5)
    gif = tmp_path / "clip.gif"
    pictures = [Image.fromarray(f) for f in frames]
    pictures[0].save(gif, save_all=True, append_images=pictures[1:], duration=100, loop=0)
    info = decode.probe(gif, VideoSettings())
    assert (info.kind, info.frames, info.rate) == ("gif", 5, Fraction(10))
    assert len(list(decode.frames(info, [0, 4]))) == 2
    folder = tmp_path / "frames"
    for index, frame in enumerate(frames):
        save_image(frame, folder / f"{index:03d}.png")
    (folder / "notes.txt").write_text("not a frame")
    info = decode.probe(folder, build_settings(fps=8))
    assert (info.kind, info.frames, info.rate) == ("frames", 5, Fraction(8))
    assert [n for n, _ in decode.frames(info, [1, 3])] == [1, 3]


def test_trimming_selects_frame_numbers(tmp_path):
    info = decode.SourceInfo(tmp_path, "frames", 64, 64, Fraction(10), 50, False)
    assert decode.select(info, VideoSettings()) == list(range(50))
    assert decode.select(info, build_settings(start=1.0, end=2.0, every=3)) == [10, 13, 16, 19]
    assert decode.select(info, build_settings(every=2, max_frames=3)) == [0, 2, 4]
    with pytest.raises(ParameterError, match=r"start 9.0 s to the source's end select no frame \(the source has 50"):
        decode.select(info, build_settings(start=9.0))  # was 'end end select no frame'
    with pytest.raises(ParameterError, match=r"start 6.0 s to end 7.0 s select no frame"):
        decode.select(info, build_settings(start=6.0, end=7.0))
    with pytest.raises(ParameterError, match=r"end 1.0 s is not after start 2.0 s"):
        build_settings(start=2.0, end=1.0)
    many = decode.SourceInfo(tmp_path, "frames", 64, 64, Fraction(10), 5000, False)
    with pytest.raises(ParameterError, match="at most 2000 per run"):
        decode.select(many, VideoSettings())


def test_not_a_video_is_refused(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("hello, this is not a video")
    with pytest.raises(ImageError, match=r"notes.mp4: not a video"):
        decode.probe(text, VideoSettings())
    with pytest.raises(ImageError, match="no such file"):
        decode.probe(tmp_path / "missing.mp4", VideoSettings())


def test_zero_frames_are_refused(tmp_path):
    import av

    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w", format="mp4") as out:  # a header and no frame
        stream = out.add_stream("libx264", rate=12)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        out.start_encoding()
        out.mux(stream.encode())
    with pytest.raises(ImageError, match=r"empty.mp4: (the video has no frames|no video stream)"):
        decode.probe(empty, VideoSettings())
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ImageError, match="no frames"):
        decode.probe(tmp_path / "nothing", VideoSettings())


def test_huge_resolution_is_refused_before_decoding(tmp_path):
    folder = tmp_path / "wide"
    save_image(np.zeros((8, 9000, 3), np.uint8), folder / "0.png")
    with pytest.raises(ImageError, match="9000x8 frames are larger than kekong reads"):
        decode.probe(folder, VideoSettings())
    with pytest.raises(ImageError, match="larger than kekong reads"):
        decode.check_source_size("big.mp4", 7000, 7000)  # within the side bound, over the pixel bound


def test_variable_frame_rate_is_refused(tmp_path):
    import av

    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 12)
        for frame, pts in zip(moving_square(6), (0, 1, 2, 6, 7, 12), strict=True):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = pts
            out.mux(stream.encode(picture))
        out.mux(stream.encode())
    with pytest.raises(ImageError, match=r"variable frame rate .* ffmpeg -i IN -vf fps=24"):
        decode.probe(path, VideoSettings())


def test_a_folder_with_a_damaged_later_frame_is_refused_before_any_frame_runs(tmp_path):
    folder = tmp_path / "frames"
    for index, frame in enumerate(moving_square(4)):
        save_image(frame, folder / f"{index:03d}.png")
    good = (folder / "002.png").read_bytes()
    (folder / "002.png").write_bytes(good[: len(good) // 2])  # truncated, as an interrupted copy leaves it
    with pytest.raises(ImageError, match=r"002\.png: frame 2 of the folder is not a readable image"):
        decode.probe(folder, VideoSettings())
    (folder / "002.png").write_bytes(good)
    from PIL import Image

    Image.new("RGB", (9000, 10)).save(folder / "003.png")  # one frame past the side limit
    with pytest.raises(ImageError, match=r"003\.png: 9000x10 frames are larger than kekong reads"):
        decode.probe(folder, VideoSettings())
