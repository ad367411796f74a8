"""`kekong verify`: provenance of images, for people and for scripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def verify(
    images: Annotated[list[Path], typer.Argument(help="images or MP4 videos to check")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per image, as a list")] = False,
) -> None:
    """Check where images came from: C2PA manifest, kekong watermark, parameters, SDXL watermark.
    An MP4 (.mp4/.m4v/.mov): its manifest, the watermark's majority over frames sampled across it, its recipe.
    Exit code (the worst over the files): 0 provenance found, 1 none found, 4 manifest stripped (the
    watermark or recipe says one was written), 2 tampered, 3 unreadable (worst)."""
    from kekong.provenance.verify import verify as check
    from kekong.provenance.verify import worst
    from kekong.video.verify import is_video, verify_video

    verdicts = [verify_video(path) if is_video(path) else check(path) for path in images]
    if as_json:
        typer.echo(json.dumps([v.as_json() for v in verdicts], indent=1, default=str))
    else:
        typer.echo("\n\n".join(_described(v) for v in verdicts))
    raise typer.Exit(int(worst([v.outcome for v in verdicts])))


def _described(verdict) -> str:
    """An image's lines; a video's also say how many sampled frames carried the mark."""
    from kekong.provenance.verify import describe

    text = describe(verdict)
    mark = verdict.watermark
    if mark.get("sampled"):
        votes = mark.get("frames_with_id", 0)
        text = text.replace("\n  watermark:", f"\n  watermark ({votes} of {mark['sampled']} sampled frames):", 1)
    video = (verdict.metadata or {}).get("video")
    if video:
        settings = video.get("settings", {})
        text = text.replace("\n  recipe:", f"\n  video: {video.get('frames')} frames at {video.get('rate')} fps from "
                            f"{video.get('source', {}).get('name')}; flow strength {settings.get('flow_strength')}, "
                            f"reference {settings.get('reference')}, same noise {settings.get('same_noise')}"
                            "\n  recipe:", 1)
    return text
