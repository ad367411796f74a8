"""A video's frames through the batch path (`kekong video --ray`): each frame a `work.Task` run by
an executor — this process or the Ray actor pool — side by side. That needs frames that do not
depend on one another: a flow start (`--flow-strength` above 0) makes each frame from the previous
output, so it is refused here. With the key-frame reference (`--reference`) frame 0 runs first and
the others, which attend to it, after. The source frames, their pose maps (the smoothing filter
runs over every frame in order) and the requests are made here; the frames are written where they
run, as `kekong.video.run` writes them (a re-run skips the frames there)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kekong.errors import KekongError, ParameterError
from kekong.scale.run import Executor
from kekong.scale.work import Task
from kekong.video.run import FrameDone, Plan, frame_fields, source_frames
from kekong.video.spec import VideoSettings


def check_independent(settings: VideoSettings) -> None:
    """Frames side by side need each frame made from noise, not from the previous output."""
    if settings.flow_strength:
        raise ParameterError("--ray runs frames side by side, but a flow start makes each frame from the previous "
                             "one: pass --flow-strength 0 with --ray (or run without --ray)")


def frame_tasks(plan: Plan) -> list[Task]:
    """A task for each frame not yet in the folder (numbered by position, from 1)."""
    from kekong.models.refs import DEFAULT_BASE

    check_independent(plan.settings)
    tasks = []
    for position, _number, frame, maps in source_frames(plan):
        out = plan.frame_path(position)
        if out.is_file():
            continue
        fields = frame_fields(plan, position, frame, None, None, maps)
        recipe = str(plan.folder / "recipe.json") if position == 0 else None
        tasks.append(Task(position + 1, fields, [str(out)], "", fields.get("model") or DEFAULT_BASE, score=False,
                          kind="frame", recipe=recipe))
    return tasks


def run_frames(plan: Plan, executor: Executor, on_frame: Callable[[FrameDone], None] | None = None) -> None:
    """Every frame not yet in the folder, made by `executor`; a frame that fails fails the run, named."""
    tasks = frame_tasks(plan)
    total, count = len(plan.numbers), 0
    failed: list[str] = []
    running = {task.line for task in tasks}
    for position in range(total):  # the frames a previous run finished
        if position + 1 not in running:
            count += 1
            if on_frame is not None:
                on_frame(FrameDone(count, total, plan.numbers[position], True, None))

    def done(entry: dict[str, Any]) -> None:
        nonlocal count
        if entry["status"] != "done":
            failed.append(f"frame {entry['line'] - 1}: {entry.get('error')}")
        count += 1
        if on_frame is not None:
            on_frame(FrameDone(count, total, plan.numbers[entry["line"] - 1], False, None))

    first = [task for task in tasks if task.line == 1]
    if first and plan.settings.reference:  # the others attend to frame 0's output
        executor.run(first, done)
        tasks = [task for task in tasks if task.line != 1]
    if not failed:
        executor.run(tasks, done)
    if failed:
        raise KekongError("; ".join(failed))
