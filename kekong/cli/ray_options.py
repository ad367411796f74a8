"""The Ray options every command that can run on a Ray actor pool takes (`batch`, `grid`,
`generate --prompts-file/--batch-dir`, `video`, `serve`): `--ray [ADDRESS]` and the worker bounds,
made from their one declaration (`kekong.scale.bounds.WorkerBounds`: help, default, bounds)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from kekong.scale.bounds import WorkerBounds

RAY_LOCAL = "local"  # what a bare `--ray` means (kekong.cli.main fills it in)
RAY_ADDRESSES = ("local", "auto", "ray://")
RAY_HELP = ("run on Ray actors, each holding its loaded models: --ray alone starts Ray in this process, --ray auto "
            "joins this machine's cluster, --ray ray://HOST:10001 a remote one (needs kekong's ray extra)")


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


def bound_option(name: str, note: str = "") -> Any:
    """A worker-bound option: its declared help (with the default and bounds) and minimum."""
    declared = WorkerBounds.declared(name)
    low = declared["ge"] if declared["ge"] is not None else declared["gt"]
    text = f"with --ray: {declared['help']}{note} (default {declared['default']:g}; " \
           f"{WorkerBounds.bounds_text(name).removeprefix('must be ')})"
    return typer.Option(WorkerBounds.flag(name), help=text, min=low, max=declared["le"])


Ray = Annotated[str | None, typer.Option("--ray", help=RAY_HELP)]
Workers = Annotated[int | None, bound_option("workers")]
CpusPerWorker = Annotated[float | None, bound_option("cpus_per_worker", "; without --ray this process's threads")]
ActorCpus = Annotated[float | None, bound_option("cpus_per_worker")]  # serve: no thread count of its own
GpusPerWorker = Annotated[float | None, bound_option("gpus_per_worker")]


def ray_address(ray: str | None) -> str | None:
    """What `connect` takes: None for a Ray in this process."""
    return None if ray in (None, RAY_LOCAL) else ray


def worker_bounds(workers: int | None, cpus_per_worker: float | None, gpus_per_worker: float | None
                  ) -> WorkerBounds:
    """The bounds the user gave (the declared defaults for the rest), checked."""
    return WorkerBounds.build(workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker)


def local_threads(cpus_per_worker: float | None) -> int | None:
    """Torch threads for work in this process: --cpus-per-worker when given."""
    return worker_bounds(None, cpus_per_worker, None).threads if cpus_per_worker is not None else None


@contextmanager
def ray_pool(ray: str | None, bounds: WorkerBounds) -> Iterator[Any]:
    """The started actor pool (closed after, with the Ray it started); a line when workers were lost."""
    from kekong.scale.ray_pool import RayPool

    with RayPool(bounds, address=ray_address(ray)) as pool:
        yield pool
    if pool.lost:
        typer.echo(f"{pool.lost} worker(s) lost and replaced; their work ran again", err=True)
