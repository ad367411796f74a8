"""`kekong serve`: the HTTP API (A1111-compatible + kekong's jobs) and the web UI in one process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from kekong.cli.ray_options import ActorCpus, GpusPerWorker, Ray, Workers, worker_bounds
from kekong.server.config import Limits, ServerConfig, limit_range

_DEFAULT = Limits()
_RANGE = {name: limit_range(name) for name in ("max_steps", "max_batch", "max_side")}


def _limit_help(text: str, limit: str) -> str:
    """The help of a --max-* option, with the values it may take (the declared bound is the most)."""
    low, high = _RANGE[limit]
    return f"{text} ({low}–{high})"


def serve(
    host: Annotated[str, typer.Option(help="address to listen on; beyond loopback needs --api-key")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 7860,
    api_key: Annotated[list[str] | None, typer.Option(
        envvar="KEKONG_API_KEY", help="callers send it as `Authorization: Bearer KEY` or `X-API-Key`; give it once "
        "per caller (several keys: the queue takes turns between them)")] = None,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="listen beyond loopback with no API key (anyone on the network may use it)")] = False,
    data_dir: Annotated[Path | None, typer.Option(help="job store and outputs (default: KEKONG_DATA_DIR/server)")
                        ] = None,
    max_steps: Annotated[int, typer.Option(help=_limit_help("most sampling steps a request may ask for",
                                                            "max_steps"))] = _DEFAULT.max_steps,
    max_batch: Annotated[int, typer.Option(help=_limit_help("most images per request (batch size × count)",
                                                            "max_batch"))] = _DEFAULT.max_batch,
    max_side: Annotated[int, typer.Option(help=_limit_help("largest width/height in pixels", "max_side"))
                        ] = _DEFAULT.max_side,
    max_body_mb: Annotated[int, typer.Option(help="largest request body, MiB")] = 64,
    max_megapixels: Annotated[float, typer.Option(help="largest decoded input image (KEKONG_MAX_PIXELS)")] = 40.0,
    allow_urls: Annotated[bool, typer.Option(
        "--allow-urls", help="accept http(s) URLs as image inputs (public hosts only, no redirects)")] = False,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="API only, no web UI at /ui")] = False,
    allowed_host: Annotated[list[str] | None, typer.Option(help="extra Host names to accept (reverse proxy)")
                            ] = None,
    allow_origin: Annotated[list[str] | None, typer.Option(
        help="another scheme://host:port whose pages may write (e.g. the https origin of a reverse proxy); "
        "by default only the server's own origin")] = None,
    max_queue: Annotated[int, typer.Option(help=ServerConfig.help("max_queue"))] = ServerConfig.max_queue,
    keep_jobs_hours: Annotated[float | None, typer.Option(help=ServerConfig.help("keep_jobs_hours"))
                               ] = ServerConfig.keep_jobs_hours,
    max_disk_gb: Annotated[float | None, typer.Option(help=ServerConfig.help("max_disk_gb"))
                           ] = ServerConfig.max_disk_gb,
    strict: Annotated[bool, typer.Option(
        "--strict", help="A1111 routes refuse fields kekong does not know (default: ignored and named in "
        "info.kekong.warnings, as A1111 ignores them)")] = False,
    ray: Ray = None,
    workers: Workers = None,
    cpus_per_worker: ActorCpus = None,
    gpus_per_worker: GpusPerWorker = None,
) -> None:
    """Serve the API and the UI: `kekong serve`, then open http://127.0.0.1:7860/ui."""
    import uvicorn

    from kekong import __version__
    from kekong.errors import ParameterError
    from kekong.server import runtime
    from kekong.server.app import create_app
    from kekong.server.inputs import UrlPolicy

    given = {"max_steps": max_steps, "max_batch": max_batch, "max_side": max_side}
    if any(not low <= given[name] <= high for name, (low, high) in _RANGE.items()) or not 0 < max_megapixels <= 1000:
        ranges = ", ".join(f"--{name.replace('_', '-')} {low}-{high}" for name, (low, high) in _RANGE.items())
        raise ParameterError(f"these must be {ranges} (the request's declared bounds), --max-megapixels above 0 "
                             "and at most 1000")
    keys = [key for key in api_key or [] if key]
    config = ServerConfig(host=host, port=port, api_key=keys[0] if keys else None, more_api_keys=tuple(keys[1:]),
                          insecure=insecure, data_dir=data_dir,
                          limits=Limits(max_steps, max_batch, max_side, max_body_mb * 2**20),
                          urls=UrlPolicy(enabled=allow_urls), ui=not no_ui,
                          allowed_hosts=tuple(allowed_host or ()), allowed_origins=tuple(allow_origin or ()),
                          max_queue=max_queue, keep_jobs_hours=keep_jobs_hours, max_disk_gb=max_disk_gb,
                          strict=strict, local_token=runtime.new_token(), ray=ray,
                          ray_pool=worker_bounds(workers, cpus_per_worker, gpus_per_worker))
    config.check()
    if insecure and not config.loopback and not keys:
        typer.echo(f"WARNING: listening on {host} with no API key — anyone who can reach this port can use it",
                   err=True)
    os.environ["KEKONG_MAX_PIXELS"] = str(int(max_megapixels * 1_000_000))  # io reads it at every decode
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    server = uvicorn.Server(uvicorn.Config(create_app(config), host=host, port=port, log_level="warning"))
    listen = server.startup
    written: list[runtime.RuntimeEntry] = []

    async def startup(sockets: list | None = None) -> None:  # say "serving" once the socket listens
        await listen(sockets=sockets)
        if server.started:
            entry = runtime.write(port, host, config.local_token or "", __version__)  # `kekong generate` finds it
            written.extend([entry] if entry else [])
            typer.echo(f"kekong serving on http://{host}:{port} (UI at /ui, API docs at /docs)")

    close = server.shutdown

    async def shutdown(sockets: list | None = None) -> None:  # the file goes first: no CLI picks a closing server
        forget()
        await close(sockets=sockets)

    def forget() -> None:
        while written:
            runtime.remove(written.pop())

    server.startup = startup  # type: ignore[method-assign]
    server.shutdown = shutdown  # type: ignore[method-assign]
    try:
        server.run()  # uvicorn re-raises SIGTERM/SIGINT after shutting down: `finally` may never run then
    finally:
        forget()
