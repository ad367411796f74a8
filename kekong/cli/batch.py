"""`kekong batch MANIFEST.jsonl --out DIR`: one request per line, resumable, on this process or on
a Ray actor pool (`--ray`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kekong.cli.fields import NoC2pa, NoMetadata, NoWatermark
from kekong.cli.ray_options import CpusPerWorker, GpusPerWorker, Ray, Workers, local_threads, ray_pool, worker_bounds
from kekong.errors import ParameterError
from kekong.provenance.stamp import FORMATS


class Bar:
    """A rich progress bar over the lines: done / total, failures, lines per second, ETA."""

    def __init__(self, total: int, label: str = "batch", failure: Any = None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[failed]}"), TimeRemainingColumn(), transient=True)
        self.task = self.progress.add_task("lines", total=total, failed="")
        self.failed = 0
        self.failure = failure or (lambda entry: f"line {entry['line']} failed: {entry.get('error')}")

    def __enter__(self) -> Bar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, entry: dict[str, Any]) -> None:
        if entry.get("status") == "failed":
            self.failed += 1
            typer.echo(self.failure(entry), err=True)  # above the bar in a terminal (rich redirects stderr)
        self.progress.update(self.task, advance=1, failed=f"{self.failed} failed" if self.failed else "")


def batch(
    manifest: Annotated[Path, typer.Argument(help="JSON Lines: one request per line (as generate --request); "
                                                  "image paths relative to the manifest")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the images and summary.json")],
    image_format: Annotated[str, typer.Option("--format", help="png, jpg or webp")] = "png",
    ray: Ray = None,
    workers: Workers = None,
    cpus_per_worker: CpusPerWorker = None,
    gpus_per_worker: GpusPerWorker = None,
    allow_urls: Annotated[bool, typer.Option(
        "--allow-urls", help="fetch http(s) image URLs (public hosts only, no redirects, as the server)")] = False,
    no_metadata: NoMetadata = False,
    no_watermark: NoWatermark = False,
    no_c2pa: NoC2pa = False,
    no_score: Annotated[bool, typer.Option("--no-score", help="skip the fidelity score")] = False,
) -> None:
    """Generate every line of a manifest into --out: outputs named LINE-HASH (the recipe's hash), a
    re-run skips finished lines, summary.json records each line (a bad line is recorded, not fatal)."""
    from kekong.scale.manifest import read_manifest
    from kekong.scale.run import Local, Options, plan_counts, run_batch

    suffix = "." + image_format.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ParameterError(f"--format {image_format}: expected png, jpg or webp")
    bounds = worker_bounds(workers, cpus_per_worker, gpus_per_worker)
    options = Options(out, suffix, {"metadata": not no_metadata, "watermark": not no_watermark,
                                    "c2pa": not no_c2pa}, not no_score)
    fetch = None
    if allow_urls:
        from kekong.server.inputs import UrlPolicy, fetch_url

        def fetch(url: str, field: str) -> bytes:
            return fetch_url(url, UrlPolicy(enabled=True), field)

    lines = read_manifest(manifest, options.hashed(), fetch)
    counts = plan_counts(lines, options)
    typer.echo(f"{manifest.name}: {counts['lines']} lines — {counts['to_run']} to run, {counts['finished']} "
               f"finished before, {counts['refused']} refused" + (f" (Ray: {bounds.workers} workers)" if ray else ""))
    if ray is None or not counts["to_run"]:  # nothing to run: no Ray to start
        executor: Any = Local(local_threads(cpus_per_worker))
        with Bar(counts["to_run"]) as bar:
            summary = run_batch(manifest, options, executor, progress=bar, lines=lines)
    else:
        with ray_pool(ray, bounds) as pool, Bar(counts["to_run"]) as bar:
            summary = run_batch(manifest, options, pool, progress=bar, lines=lines)
    done = summary["counts"]
    typer.echo(f"wrote {out / 'summary.json'}: {done['done']} done, {done['resumed']} finished before, "
               f"{done['failed']} failed")
    if done["failed"]:
        raise typer.Exit(1)
