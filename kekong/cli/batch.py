"""`kekong batch MANIFEST.jsonl --out DIR`: one request per line, resumable, on this process or on
a Ray actor pool (`--ray`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kekong.cli.fields import NoC2pa, NoMetadata, NoWatermark
from kekong.errors import ParameterError
from kekong.provenance.stamp import FORMATS

RAY_LOCAL = "local"  # what a bare `--ray` means (kekong.cli.main fills it in)
RAY_ADDRESSES = ("local", "auto", "ray://")


def bare_ray_flag(argv: list[str]) -> list[str]:
    """`--ray` with no address (followed by nothing, another option, or a word that is no address)
    becomes `--ray local`: click has no optional option values."""
    out = []
    for index, arg in enumerate(argv):
        out.append(arg)
        if arg == "--ray":
            following = argv[index + 1] if index + 1 < len(argv) else ""
            if not following.startswith(RAY_ADDRESSES):
                out.append(RAY_LOCAL)
    return out


class Bar:
    """A rich progress bar over the lines: done / total, failures, lines per second, ETA."""

    def __init__(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("batch"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[failed]}"), TimeRemainingColumn(), transient=True)
        self.task = self.progress.add_task("lines", total=total, failed="")
        self.failed = 0

    def __enter__(self) -> Bar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, entry: dict[str, Any]) -> None:
        if entry.get("status") == "failed":
            self.failed += 1
            self.progress.console.print(f"line {entry['line']} failed: {entry.get('error')}", markup=False)
        self.progress.update(self.task, advance=1, failed=f"{self.failed} failed" if self.failed else "")


def batch(
    manifest: Annotated[Path, typer.Argument(help="JSON Lines: one request per line (as generate --request); "
                                                  "image paths relative to the manifest")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the images and summary.json")],
    image_format: Annotated[str, typer.Option("--format", help="png, jpg or webp")] = "png",
    ray: Annotated[str | None, typer.Option(
        "--ray", help="run on Ray: --ray alone starts Ray in this process; --ray auto joins this machine's "
        "cluster; --ray ray://HOST:10001 a remote one (needs pip install 'kekong[ray]')")] = None,
    workers: Annotated[int, typer.Option(help="with --ray: actors, each holding its loaded models", min=1)] = 2,
    cpus_per_worker: Annotated[float | None, typer.Option(
        help="CPUs per worker (its torch threads); also the thread count without --ray")] = None,
    gpus_per_worker: Annotated[float, typer.Option(help="with --ray: GPUs Ray reserves per worker", min=0)] = 0.0,
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
    if cpus_per_worker is not None and cpus_per_worker <= 0:
        raise ParameterError(f"--cpus-per-worker {cpus_per_worker}: must be above 0")
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
               f"finished before, {counts['refused']} refused" + (f" (Ray: {workers} workers)" if ray else ""))
    if ray is None or not counts["to_run"]:  # nothing to run: no Ray to start
        executor: Any = Local(max(1, int(cpus_per_worker)) if cpus_per_worker else None)
        with Bar(counts["to_run"]) as bar:
            summary = run_batch(manifest, options, executor, progress=bar, lines=lines)
    else:
        from kekong.scale.ray_pool import RayPool

        with RayPool(workers, cpus_per_worker or 1.0, gpus_per_worker,
                     address=None if ray == RAY_LOCAL else ray) as pool, Bar(counts["to_run"]) as bar:
            summary = run_batch(manifest, options, pool, progress=bar, lines=lines)
        if pool.lost:
            typer.echo(f"{pool.lost} worker(s) lost and replaced; their lines ran again", err=True)
    done = summary["counts"]
    typer.echo(f"wrote {out / 'summary.json'}: {done['done']} done, {done['resumed']} finished before, "
               f"{done['failed']} failed")
    if done["failed"]:
        raise typer.Exit(1)
