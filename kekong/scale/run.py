"""`kekong batch`: a manifest's lines run to files in one folder, resumable, with a summary.

Outputs are named `LINE-HASH.png` (`LINE-HASH-K.png` when a line makes several images): the line
number and its recipe hash (`manifest.recipe_hash`). A re-run skips every line whose files are all
there under that name (each is written atomically, so a file there is whole); a line whose request
changed gets a new hash, so it runs again. `summary.json` has one entry per line, in line order —
status (done, failed, resumed), seconds, outputs, seeds, fidelity scores, attempts, worker — and is
rewritten as lines finish, so an interrupted batch leaves what it finished on record.

Who runs the lines is an `Executor`: `Local` here, in this process, one after another; or the Ray
actor pool (`ray_pool.RayPool`), which runs the same `work.run_task`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kekong.io import write_atomic
from kekong.scale.manifest import Fetch, Line, read_manifest
from kekong.scale.work import Task, run_task

SUMMARY = "summary.json"
Done = Callable[[dict[str, Any]], None]


class Executor(Protocol):
    def run(self, tasks: list[Task], done: Done) -> None:
        """Run every task, calling `done(entry)` once per task as it finishes."""


@dataclass
class Local:
    """Lines one after another in this process (the default, no Ray); `on_step` after each
    denoising step (a step progress bar)."""

    threads: int | None = None
    on_step: Callable[[Any], Any] | None = None

    def run(self, tasks: list[Task], done: Done) -> None:
        for task in tasks:
            done({**run_task(task, self.threads, self.on_step), "worker": "local"})


@dataclass
class Options:
    out: Path
    suffix: str = ".png"
    layers: dict[str, bool] = field(default_factory=dict)  # provenance.stamp.Layers' fields
    score: bool = True
    sidecar: bool = False  # the recipe JSON beside each image (generate --save-recipe)

    def hashed(self) -> dict[str, Any]:
        """What joins each line's recipe hash (the folder does not)."""
        return {"suffix": self.suffix, "layers": dict(sorted(self.layers.items())), "score": self.score,
                **({"sidecar": True} if self.sidecar else {})}


def outputs(line: Line, options: Options) -> list[Path]:
    count = line.images
    if count == 1:
        return [options.out / f"{line.stem}{options.suffix}"]
    if line.name is not None:  # generate's own names for several images: NAME-0000 …
        return [options.out / f"{line.stem}-{k:04d}{options.suffix}" for k in range(count)]
    return [options.out / f"{line.stem}-{k}{options.suffix}" for k in range(count)]


def plan(lines: Iterable[Line], options: Options, earlier: dict[int, dict[str, Any]] | None = None
         ) -> tuple[list[Task], list[Line]]:
    """(tasks to run, lines already finished): a line is finished when all its files exist — and,
    for a line with a name of its own (which does not carry the recipe hash), when the earlier
    summary (`earlier`) recorded it with the same recipe hash."""
    tasks, finished = [], []
    for line in lines:
        if line.error is not None:
            continue
        paths = outputs(line, options)
        recorded = line.name is None or (earlier or {}).get(line.number, {}).get("recipe_hash") == line.recipe_hash
        if recorded and all(path.is_file() for path in paths):
            finished.append(line)
            continue
        tasks.append(Task(line.number, line.fields, [str(p) for p in paths], line.recipe_hash, line.model,
                          options.layers, options.score, sidecar=options.sidecar))
    return tasks, finished


class Summary:
    """The batch's record, one entry per line, written to `summary.json` (atomically, at most every
    `interval` seconds and at the end)."""

    def __init__(self, path: Path, manifest: str, lines: list[Line], scrub: str, interval: float = 1.0) -> None:
        self.path, self.manifest, self.scrub, self.interval = path, manifest, scrub, interval
        earlier = previous_entries(path)
        self.entries: dict[int, dict[str, Any]] = {}
        for line in lines:
            if line.error is not None:
                self.entries[line.number] = {"line": line.number, "status": "failed", "error": self._clean(line.error),
                                             "seconds": 0.0, "attempts": 0}
        self.lines = len(lines)
        self.earlier = earlier  # the previous run's entries, by line
        self._written = 0.0
        self.started = time.perf_counter()

    def resumed(self, line: Line, names: list[str]) -> None:
        before = self.earlier.get(line.number)
        kept = before if before and before.get("recipe_hash") == line.recipe_hash else {}
        self.entries[line.number] = {**kept, "line": line.number, "recipe_hash": line.recipe_hash,
                                     "status": "resumed", "outputs": names, "seconds": 0.0}

    def add(self, entry: dict[str, Any]) -> None:
        if "error" in entry:
            entry = {**entry, "error": self._clean(entry["error"])}
        self.entries[entry["line"]] = entry
        if time.perf_counter() - self._written >= self.interval:
            self.write()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {"lines": self.lines, "done": 0, "resumed": 0, "failed": 0}
        for entry in self.entries.values():
            out[entry["status"]] = out.get(entry["status"], 0) + 1
        return out

    def write(self) -> dict[str, Any]:
        data = {"manifest": self.manifest, "counts": self.counts(),
                "seconds": round(time.perf_counter() - self.started, 3),
                "lines": [self.entries[n] for n in sorted(self.entries)]}
        write_atomic(self.path, (json.dumps(data, indent=1) + "\n").encode())
        self._written = time.perf_counter()
        return data

    def _clean(self, text: str) -> str:
        """No local folder in the record: paths under the manifest's folder or the working folder
        shown relative to it, any other path in the home folder from `~`."""
        return scrub_paths(text, [self.scrub, str(Path.cwd())] if self.scrub else [str(Path.cwd())])


def scrub_paths(text: str, folders: list[str]) -> str:
    """`text` with each of `folders` (deepest first) cut from the paths it names, then the home folder as `~`."""
    for folder in sorted({f.rstrip("/") for f in folders if f.strip("/")}, key=len, reverse=True):
        text = text.replace(folder + "/", "")
    home = str(Path.home()).rstrip("/")
    return text.replace(home + "/", "~/") if home else text


def previous_entries(path: Path) -> dict[int, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
        return {int(entry["line"]): entry for entry in data.get("lines", []) if isinstance(entry, dict)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def run_batch(manifest: Path, options: Options, executor: Executor | None = None, fetch: Fetch | None = None,
              progress: Done | None = None, lines: list[Line] | None = None) -> dict[str, Any]:
    """Run the manifest's unfinished lines; the summary (also written to `summary.json`)."""
    manifest = Path(manifest)
    lines = lines if lines is not None else read_manifest(manifest, options.hashed(), fetch)
    options.out.mkdir(parents=True, exist_ok=True)
    summary = Summary(options.out / SUMMARY, manifest.name, lines, str(manifest.resolve().parent))
    tasks, finished = plan(lines, options, summary.earlier)
    for line in finished:
        summary.resumed(line, [p.name for p in outputs(line, options)])

    def done(entry: dict[str, Any]) -> None:
        summary.add(entry)
        if progress is not None:
            progress(entry)

    try:
        (executor or Local()).run(tasks, done)
    finally:  # Ctrl-C included: what finished is on record for the next run
        data = summary.write()
    return data


def plan_counts(lines: list[Line], options: Options) -> dict[str, int]:
    tasks, finished = plan(lines, options, previous_entries(options.out / SUMMARY))
    return {"lines": len(lines), "to_run": len(tasks), "finished": len(finished),
            "refused": sum(1 for line in lines if line.error is not None)}
