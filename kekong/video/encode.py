"""Writing frames as an H.264 MP4 at a given rate, with the source's audio for the same stretch
of time copied through (re-encoded to AAC only when MP4 cannot hold its codec)."""

from __future__ import annotations

import io
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from kekong.errors import ImageError

MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}  # codecs an MP4 carries as they are
QUALITY = 16  # libx264 CRF: near-transparent, so the frames' watermark survives (a viewer's re-encode too)


def encode_mp4(frames: Iterable[np.ndarray], rate: Fraction, audio_from: Path | None = None,
               window: tuple[float, float] | None = None, crf: int = QUALITY, bit_rate: int | None = None,
               metadata: dict[str, str] | None = None) -> bytes:
    """The MP4 file's bytes. `audio_from`: a file whose first audio stream, between `window`
    seconds (start, end), is laid under the frames. `bit_rate` (bits/s) instead of a CRF;
    `metadata`: container tags (comment …)."""
    import av

    buffer = io.BytesIO()
    source = av.open(str(audio_from)) if audio_from is not None else None
    try:
        with av.open(buffer, "w", format="mp4") as output:
            output.metadata.update(metadata or {})
            video = None
            audio = _audio_streams(source, output)
            count = 0
            for frame in frames:
                if video is None:
                    video = _video_stream(output, rate, frame.shape[1], frame.shape[0], crf, bit_rate)
                packet_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[..., :3]), format="rgb24")
                packet_frame.pts = count
                output.mux(video.encode(packet_frame))
                count += 1
            if video is None:
                raise ImageError("no frames to write")
            output.mux(video.encode())
            if audio is not None:
                start, end = window or (0.0, float("inf"))
                _lay_audio(source, audio, start, min(end, start + float(count / rate)), output)
    finally:
        if source is not None:
            source.close()
    return buffer.getvalue()


def _video_stream(output, rate: Fraction, width: int, height: int, crf: int, bit_rate: int | None):
    stream = output.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.time_base = 1 / rate
    if bit_rate:
        stream.bit_rate = bit_rate
        stream.options = {"preset": "medium"}
    else:
        stream.options = {"crf": str(crf), "preset": "medium"}
    return stream


def _audio_streams(source, output):
    """(input stream, output stream, copied) for the source's first audio stream, or None."""
    if source is None or not source.streams.audio:
        return None
    stream = source.streams.audio[0]
    if stream.codec_context.name in MP4_AUDIO:
        return stream, output.add_stream_from_template(stream), True
    encoded = output.add_stream("aac", rate=stream.codec_context.sample_rate or 48000)
    return stream, encoded, False


def _lay_audio(source, audio, start: float, end: float, output) -> None:
    """The audio between `start` and `end` seconds of the source, moved to start at 0."""
    stream, out_stream, copied = audio
    base = stream.time_base
    first = stream.start_time or 0
    offset = int(start / base) + first
    if copied:
        for packet in source.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            when = float((packet.pts - first) * base)
            if when < start - 1e-6:
                continue
            if when >= end:
                break
            packet.pts -= offset
            packet.dts = packet.pts if packet.dts is None else packet.dts - offset
            packet.stream = out_stream
            output.mux(packet)
        return
    for frame in source.decode(stream):
        if frame.pts is None:
            continue
        when = float((frame.pts - first) * base)
        if when < start - 1e-6:
            continue
        if when >= end:
            break
        frame.pts = None
        output.mux(out_stream.encode(frame))
    output.mux(out_stream.encode())


def decode_all(data: bytes | Path) -> tuple[list[np.ndarray], Fraction, bool]:
    """Every frame of an MP4 (bytes or path), its rate and whether it has audio (tests and verify)."""
    import av

    with av.open(io.BytesIO(data) if isinstance(data, bytes) else str(data)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or Fraction(24)
        images = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return images, Fraction(rate), bool(container.streams.audio)
