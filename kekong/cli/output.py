"""What `kekong generate` shows and names as it writes: the step bar, the output file names, the
fidelity lines — shared by a local run and one through a running server (cli/via_server.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def output_paths(out: Path, count: int) -> list[Path]:
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i:04d}{out.suffix}") for i in range(count)]


class StepBar:
    """A rich progress bar over all steps of all batches: step, it/s, ETA."""

    def __init__(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("generating"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), transient=True)
        self.task = self.progress.add_task("steps", total=total, rate="")

    def __enter__(self) -> StepBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, info: Any) -> None:
        self.progress.advance(self.task)
        speed = self.progress.tasks[0].speed
        self.progress.update(self.task, rate=f"{speed:.2f} it/s" if speed else "")


def fidelity_text(entry: dict[str, Any]) -> str:
    if entry.get("value") is None:
        return f"not scored — {entry.get('reason', '')}"
    extra = "".join(f", {name} {value:.3f}" for name, value in (entry.get("extra") or {}).items())
    better = "" if entry.get("higher_is_better", True) else " (lower is better)"
    return f"{entry['metric']} {entry['value']:.3f}{extra}{better}"
