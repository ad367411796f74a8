"""Reading a source: a video file (MP4, MOV, WebM … through PyAV's FFmpeg), a GIF, or a folder of
frames. `probe` checks everything a run needs before any frame is decoded or generated — that it
is a video at all, has frames, a side and pixel count within bounds, a constant frame rate — and
`select` turns the trimming settings into frame numbers."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from kekong.errors import ImageError, ParameterError
from kekong.video.spec import MAX_FRAMES, MAX_SOURCE_PIXELS, MAX_SOURCE_SIDE, VFR_TOLERANCE, VideoSettings

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass(frozen=True)
class SourceInfo:
    """What a run needs to know about its source."""

    path: Path
    kind: str  # "video", "gif" or "frames"
    width: int
    height: int
    rate: Fraction  # frames per second
    frames: int
    has_audio: bool
    files: tuple[Path, ...] = ()  # a folder's frames, in order

    @property
    def duration(self) -> float:
        return float(self.frames / self.rate)


def probe(path: str | Path, settings: VideoSettings) -> SourceInfo:
    """The source's size, rate and frame count, refused with a message when it cannot be used."""
    path = Path(path)
    if path.is_dir():
        return _probe_folder(path, settings.fps)
    if not path.is_file():
        raise ImageError(f"{path}: no such file or folder")
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError, OSError) as error:
        raise ImageError(f"{path.name}: not a video this build of FFmpeg can read ({_reason(error)})") from None
    with container:
        if not container.streams.video:
            raise ImageError(f"{path.name}: no video stream (streams: "
                             f"{', '.join(s.type for s in container.streams) or 'none'})")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        check_source_size(path.name, width, height)
        times = []
        try:
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    times.append(packet.pts)
        except (av.error.FFmpegError, OSError, ValueError) as error:
            raise ImageError(f"{path.name}: the video stream is damaged ({_reason(error)})") from None
        if not times:
            raise ImageError(f"{path.name}: the video has no frames")
        rate = constant_rate(path.name, sorted(times), stream.time_base, stream.average_rate)
        kind = "gif" if container.format.name == "gif" else "video"
        return SourceInfo(path, kind, width, height, rate, len(times), bool(container.streams.audio))


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error).split(":")[-1].strip() or type(error).__name__


def check_source_size(name: str, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"{name}: the video stream has no frame size ({width}x{height})")
    if max(width, height) > MAX_SOURCE_SIDE or width * height > MAX_SOURCE_PIXELS:
        raise ImageError(f"{name}: {width}x{height} frames are larger than kekong reads (a side of at most "
                         f"{MAX_SOURCE_SIDE} and {MAX_SOURCE_PIXELS:,} pixels); scale the video down first, e.g. "
                         "ffmpeg -i IN -vf scale=-2:1080 OUT.mp4")


def constant_rate(name: str, pts: list[int], time_base: Fraction, declared: Fraction | None) -> Fraction:
    """The frame rate of presentation times `pts`; a variable rate is refused (frames would be
    written at the wrong times, and the flow between them would not be one step)."""
    if len(pts) == 1:
        return Fraction(declared) if declared else Fraction(24)
    steps = np.diff(np.asarray(pts, np.int64))
    if steps.min() <= 0:
        raise ImageError(f"{name}: two frames share a presentation time (a damaged or variable-rate video)")
    median = float(np.median(steps))
    worst = float(np.max(np.abs(steps - median))) / median
    if worst > VFR_TOLERANCE:
        shortest, longest = float(steps.min() * time_base), float(steps.max() * time_base)
        raise ImageError(f"{name}: variable frame rate (frames {shortest * 1000:.0f}–{longest * 1000:.0f} ms apart); "
                         "convert it to a constant rate first, e.g. ffmpeg -i IN -vf fps=24 OUT.mp4")
    rate = Fraction(1) / (Fraction(median).limit_denominator(1_000_000) * time_base)
    if declared and abs(float(declared) - float(rate)) / float(rate) < 0.01:
        return Fraction(declared)  # 30000/1001 rather than its rounded neighbour
    return rate.limit_denominator(1001)


def _probe_folder(folder: Path, fps: float) -> SourceInfo:
    """A folder of frames, every one opened and checked before any is generated (a damaged frame
    500 would otherwise stop a run after 499 generations). Frames may differ in size: each is fitted."""
    from PIL import Image

    files = tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()))
    if not files:
        raise ImageError(f"{folder}: no frames (no {', '.join(FRAME_SUFFIXES)} files in the folder)")
    sizes = []
    for index, file in enumerate(files):
        try:
            with Image.open(file) as frame:
                size = frame.size
                if max(size) <= MAX_SOURCE_SIDE and size[0] * size[1] <= MAX_SOURCE_PIXELS:
                    frame.load()  # decoded once here: a truncated or damaged frame is found before any runs
        except Image.DecompressionBombError:
            size = (MAX_SOURCE_SIDE + 1, MAX_SOURCE_SIDE + 1)  # refused just below, by size
        except (OSError, SyntaxError, ValueError) as error:  # PIL raises SyntaxError for some broken files
            raise ImageError(f"{file.name}: frame {index} of the folder is not a readable image ({error}); "
                             "no frame was generated") from None
        check_source_size(file.name, *size)
        sizes.append(size)
    width, height = sizes[0]
    return SourceInfo(folder, "frames", width, height, Fraction(fps).limit_denominator(1001), len(files), False, files)


def select(info: SourceInfo, settings: VideoSettings) -> list[int]:
    """The source frame numbers a run generates: from start to end, every Nth, at most max_frames."""
    first = math.ceil(settings.start * info.rate - 1e-6)
    stop = info.frames if not settings.end else min(info.frames, math.floor(settings.end * info.rate + 1e-6) + 1)
    chosen = list(range(first, stop, settings.every))
    if not chosen:
        until = f"end {settings.end} s" if settings.end else "the source's end"
        raise ParameterError(f"start {settings.start} s to {until} select no frame (the source has {info.frames} "
                             f"frames, {info.duration:.2f} s)")
    if settings.max_frames:
        chosen = chosen[:settings.max_frames]
    elif len(chosen) > MAX_FRAMES:
        raise ParameterError(f"{len(chosen)} frames selected; at most {MAX_FRAMES} per run — use --max-frames, "
                             "--every or --end")
    return chosen


def frames(info: SourceInfo, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(frame number, uint8 RGB) of each wanted frame, in order."""
    if info.kind == "frames":
        from kekong.io import load_image

        for number in wanted:
            yield number, load_image(info.files[number])
        return
    import av

    remaining = sorted(set(wanted))
    with av.open(str(info.path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        number = 0
        try:
            for frame in container.decode(stream):
                if number == remaining[0]:
                    yield number, frame.to_ndarray(format="rgb24")
                    remaining.pop(0)
                    if not remaining:
                        return
                number += 1
        except av.error.FFmpegError as error:
            raise ImageError(f"{info.path.name}: frame {number} cannot be decoded ({_reason(error)})") from None
    if remaining:
        raise ImageError(f"{info.path.name}: frames from {remaining[0]} on could not be decoded "
                         f"(the file holds {number})")
