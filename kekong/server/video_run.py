"""Running a video job (kind "video") in the worker: the core's video run into the job's folder
(frames as they finish, so a retried job resumes), then the MP4 with its provenance. Per-frame
progress is written to `frames.json` beside the frames."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kekong.io import write_atomic

OUTPUT = "video.mp4"
FRAMES = "frames.json"


def frames_progress(out_dir: Path) -> dict[str, Any] | None:
    """{"done", "total", "seconds_left"} of a video job, once its first frame is done."""
    try:
        return json.loads((out_dir / FRAMES).read_text())
    except (OSError, ValueError):
        return None


def run_video_job(job: Any, request: Any, out_dir: Path, on_step: Callable[[Any], Any]) -> dict[str, Any]:
    from kekong.provenance.stamp import Layers
    from kekong.video.record import write_video
    from kekong.video.run import plan, run
    from kekong.video.spec import VideoSettings

    answer = job.payload.get("answer", {})
    video = answer["video"]
    fields = request.model_dump(mode="json")
    out_dir.mkdir(parents=True, exist_ok=True)
    planned = plan(Path(video["source"]), out_dir / OUTPUT, VideoSettings(**video["settings"]), fields)

    def on_frame(done: Any) -> None:
        write_atomic(out_dir / FRAMES, json.dumps({"done": done.done, "total": done.total,
                                                   "seconds_left": done.seconds_left}).encode())

    run(planned, on_step=on_step, on_frame=on_frame)
    record = write_video(planned, out_dir / OUTPUT, Layers(**answer.get("layers", {})))
    return {"images": [], "maps": [], "warnings": [],
            "video": {"file": OUTPUT, "frames": len(planned.numbers), "rate": str(planned.rate),
                      "size": list(planned.size), "seed": planned.seed, "watermark": record["watermark"]},
            "request": request.model_dump(mode="json", exclude={"controls": True})}
