"""`kekong grid` and `kekong generate --prompts-file/--batch-dir`: the cells or jobs through the
batch path (kekong.scale) — in this process (kekong.scale.run.Local), or with --ray on the Ray
actor pool: the same files either way."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from kekong.errors import ParameterError
from kekong.provenance.stamp import Layers
from kekong.scale.bounds import WorkerBounds


def grid(fields: dict[str, Any], axes_text: list[str], folder: Path, layers: Layers, score: bool,
         ray: str | None = None, bounds: WorkerBounds | None = None) -> None:
    """Every cell checked first, then made through the batch path (stamped where it runs, into
    `folder`) — in this process with a bar over every step, or with `ray` on the actors with a bar
    over the cells; the sheet and grid.json written here."""
    from kekong.cli.batch import Bar
    from kekong.cli.output import StepBar
    from kekong.cli.ray_options import ray_pool
    from kekong.generation.grid import fix_seeds, parse_axis, plan
    from kekong.generation.pipeline import steps_per_batch
    from kekong.provenance.grid_record import write_grid
    from kekong.scale.cells import run_cells
    from kekong.scale.run import Local

    fields, axes = fix_seeds(fields, [parse_axis(text) for text in axes_text])  # the sheet names the seeds drawn
    cells = plan(fields, axes)
    where = f" (Ray: {bounds.workers} workers)" if ray is not None and bounds is not None else ""
    typer.echo(f"grid: {' × '.join(str(len(a.values)) for a in axes)} = {len(cells)} cells into {folder}{where}")
    if ray is None:
        with StepBar(sum(steps_per_batch(c.request) for c in cells)) as bar:
            results = run_cells(cells, Local(on_step=bar), folder, layers, score)
    else:
        with ray_pool(ray, bounds or WorkerBounds()) as pool, Bar(len(cells), "cells") as bar:
            results = run_cells(cells, pool, folder, layers, score, progress=bar)
    summary = write_grid(cells, results, axes, folder, layers)
    typer.echo(f"wrote {folder / summary['sheet']} ({len(cells)} cells, grid.json, grid.csv"
               f"{', ' + summary['plot'] if 'plot' in summary else ''})")


def batch_jobs(fields: dict[str, Any], prompts_file: Path | None, batch_dir: Path | None, batch_as: str,
               out_dir: Path | None, suffix: str, save_recipe: bool, layers: Layers, score: bool = True,
               ray: str | None = None, bounds: WorkerBounds | None = None) -> None:
    """generate's batch jobs as `kekong batch` runs a manifest's lines — in this process, or with
    `ray` on the actor pool: each output named after its job, summary.json in --out-dir, a re-run
    skips the jobs finished with the same recipe. Every job is checked before the first runs; a job
    whose image cannot be read is skipped and named, the others run (exit code 1 when any was
    skipped)."""
    from kekong.cli.batch import Bar
    from kekong.cli.ray_options import ray_pool
    from kekong.generation.batch import folder_images, jobs, read_prompts
    from kekong.scale.manifest import job_line
    from kekong.scale.run import Local, Options, plan_counts, run_batch

    if out_dir is None:
        raise ParameterError("--prompts-file / --batch-dir need --out-dir (outputs are named after each job)")
    prompts = read_prompts(prompts_file) if prompts_file else None
    images = folder_images(batch_dir) if batch_dir else None
    options = Options(out_dir, suffix.lower(), asdict(layers), score, save_recipe)
    lines = [job_line(number, name, job, options.hashed())
             for number, (name, job) in enumerate(jobs(fields, prompts, images, batch_as), start=1)]
    names = {line.number: line.name for line in lines}
    counts = plan_counts(lines, options)
    where = f" (Ray: {bounds.workers} workers)" if ray is not None and bounds is not None else ""
    typer.echo(f"{len(lines)} jobs — {counts['to_run']} to run, {counts['finished']} finished before, "
               f"{counts['refused']} refused{where}")

    def failure(entry: dict[str, Any]) -> str:
        return f"skipped {names[entry['line']]}: {entry.get('error')}"

    def wrote(entry: dict[str, Any]) -> None:  # each job's fidelity scores are in summary.json
        if entry["status"] == "done":
            for name, seed in zip(entry["outputs"], entry["seeds"], strict=False):
                bar.progress.console.print(f"wrote {out_dir / name} (seed {seed})", markup=False, highlight=False)
        bar(entry)

    source = prompts_file or batch_dir or out_dir
    if not counts["to_run"]:  # nothing to run: no Ray to start
        summary = run_batch(source, options, None, lines=lines)
    else:
        executor = nullcontext(Local()) if ray is None else ray_pool(ray, bounds or WorkerBounds())
        with executor as pool, Bar(counts["to_run"], "jobs", failure) as bar:
            summary = run_batch(source, options, pool, progress=wrote, lines=lines)
    for entry in summary["lines"]:  # refused before running (an image that cannot be read)
        if entry["status"] == "failed" and not entry.get("attempts"):
            typer.echo(failure(entry), err=True)
    failed = summary["counts"]["failed"]
    typer.echo(f"wrote {out_dir / 'summary.json'}")
    if failed:
        typer.echo(f"{failed} of {len(lines)} jobs skipped", err=True)
        raise typer.Exit(1)


def on_ray(options: dict[str, Any], fields: dict[str, Any], layers: Layers) -> bool:
    """generate's (and grid's) Ray options: the grid or the batch jobs run on the actor pool (True:
    done); one image with --ray is refused. Without --ray, --cpus-per-worker sets this process's
    torch threads and the run goes on here (False)."""
    from kekong.cli.ray_options import local_threads, worker_bounds

    o = options.get
    bounds = worker_bounds(o("workers"), o("cpus_per_worker"), o("gpus_per_worker"))
    if o("ray") is None:
        import torch

        torch.set_num_threads(local_threads(o("cpus_per_worker")) or torch.get_num_threads())
        return False
    out, score = o("out"), not o("no_score")
    if o("x") or o("y") or o("z"):
        grid(fields, [a for a in (o("x"), o("y"), o("z")) if a], o("out_dir") or out.with_suffix(""), layers, score,
             o("ray"), bounds)
        return True
    if o("prompts_file") is None and o("batch_dir") is None:
        raise ParameterError("--ray runs grids (--x/--y/--z) and batch jobs (--prompts-file/--batch-dir) on Ray "
                             "actors; one image is made here (leave --ray out, or use kekong batch)")
    batch_jobs(fields, o("prompts_file"), o("batch_dir"), o("batch_as"), o("out_dir"), out.suffix, o("save_recipe"),
               layers, score, o("ray"), bounds)
    return True
