"""`kekong verify` for an MP4: its C2PA manifest, the kekong watermark read on frames sampled across
the video (the id most frames carry wins; the votes are reported), and the recipe kekong writes in
the MP4's metadata. The verdict has the same form as an image's (provenance/verify.py)."""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from kekong.provenance.verify import Outcome, Verdict, judge, manifest_expected

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov")
SAMPLED = 9  # frames read for the watermark, spread evenly


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def sample_frames(data: bytes, count: int = SAMPLED) -> tuple[list[np.ndarray], int]:
    """`count` frames spread evenly over the video, and its frame total."""
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    if not frames:
        return [], 0
    picks = sorted({round(i * (len(frames) - 1) / max(1, count - 1)) for i in range(min(count, len(frames)))})
    return [frames[i] for i in picks], len(frames)


def read_watermark(frames: list[np.ndarray]) -> dict[str, Any]:
    """The mark's majority over frames: the id read on most, its votes and the frames read."""
    from kekong.provenance import marks, watermark

    if not frames:
        return {"found": False, "sampled": 0}
    height, width = frames[0].shape[:2]
    if min(height, width) < watermark.MIN_SIDE:
        return {"found": False, "too_small": True, "sampled": 0,
                "note": f"{width}x{height} frames are too small to carry a reliable mark (below "
                        f"{watermark.MIN_SIDE} px)"}
    readings = [watermark.read(frame) for frame in frames]
    votes = Counter(r.mark_id for r in readings if r.found and r.mark_id is not None)
    result: dict[str, Any] = {"sampled": len(frames), "votes": {marks.format_id(k): v for k, v in votes.items()}}
    if not votes:
        return {**result, "found": False, "confidence": round(max(r.confidence for r in readings), 1)}
    mark_id, count = votes.most_common(1)[0]
    best = max(r.confidence for r in readings if r.mark_id == mark_id)
    return {**result, "found": count * 2 > len(frames), "id": marks.format_id(mark_id), "frames_with_id": count,
            "confidence": round(best, 1), "made_here": marks.look_up(mark_id)}


def read_metadata(data: bytes) -> dict[str, Any]:
    """The recipe kekong writes in the MP4's comment tag."""
    import av

    with av.open(io.BytesIO(data)) as container:
        comment = container.metadata.get("comment")
    try:
        recipe = json.loads(comment) if comment else None
    except ValueError:
        recipe = None
    if not isinstance(recipe, dict) or "kekong_recipe" not in recipe:
        return {}
    return {"recipe": recipe, "layers": recipe.get("provenance"), "video": recipe.get("video")}


def verify_video(path: str | Path) -> Verdict:
    """Check one MP4; never raises for a bad file (the verdict says what is wrong)."""
    import av

    from kekong.provenance.credentials import read_credentials

    path = Path(path)
    try:
        data = path.read_bytes()
        frames, total = sample_frames(data)
        metadata = read_metadata(data)
    except OSError as error:
        return Verdict(str(path), Outcome.UNREADABLE, error=f"{path}: {error.strerror or error}")
    except (av.error.FFmpegError, IndexError, ValueError) as error:
        return Verdict(str(path), Outcome.UNREADABLE, error=f"{path.name}: not a video kekong can read ({error})")
    if not total:
        return Verdict(str(path), Outcome.UNREADABLE, error=f"{path.name}: the video has no frames")
    credentials = read_credentials(data, path.suffix)
    mark = read_watermark(frames)
    verdict = Verdict(str(path), Outcome.NOTHING, c2pa=asdict(credentials), watermark=mark, metadata=metadata)
    expected = manifest_expected(mark, {"layers": metadata.get("layers") or {}})
    return judge(verdict, credentials, expected, bool(mark.get("found") or metadata.get("recipe")))
