"""kekong's HTTP API as a Ray Serve deployment: replicas of the whole FastAPI app (A1111 routes and
/v1/jobs, auth, limits), autoscaled by Ray Serve on the requests each has under way. Needs
`pip install 'kekong[ray-serve]'`. One command runs it on this machine:

    python -m kekong.server.ray_serve --data-dir /shared/kekong --min-replicas 1 --max-replicas 4

(Ray started in this process; `--ray auto` or `--ray ray://HOST:10001` deploys to a cluster.) It
serves on http://127.0.0.1:8000 until Ctrl-C.

- **One store for all replicas.** Every replica opens the same job store (`--data-dir`: on a
  cluster a path every node has). A job is queued by the replica that got the POST and run by
  whichever replica's worker claims it first (SQLite `BEGIN IMMEDIATE`: exactly one); any replica
  answers `GET /v1/jobs/{id}` and its files, and a waiting request (A1111's txt2img) learns of a job
  another replica finished from the store (`Worker(shared=True)`). The store is recovered once, here,
  before the replicas start (a replica starting later must not mark its peers' running jobs lost).
- **Scaling.** Each replica runs one job at a time in its own process (its own model cache) and
  reserves `--cpus-per-replica`; Ray Serve adds replicas up to `--max-replicas` while each has more
  than `--target-ongoing-requests` requests under way, and removes idle ones down to `--min-replicas`.
- **Limits.** `/sdapi/v1/progress`, skip and interrupt see the jobs of the replica they reach; a
  DELETE of a job running on another replica answers 409 (it runs to its end). No web UI (`/ui`):
  `kekong serve` has it. For one API process with jobs on Ray actors, `kekong serve --ray`.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from kekong.errors import KekongError, ParameterError
from kekong.server.config import ServerConfig

INSTALL = "Ray Serve is not installed: pip install 'kekong[ray-serve]'"


def _declared(default: Any, help: str, low: float) -> Any:
    return field(default=default, metadata={"help": help, "low": low})


@dataclass(frozen=True)
class Scaling:
    """The deployment's replicas (the options of `python -m kekong.server.ray_serve`)."""

    min_replicas: int = _declared(1, "fewest replicas (each a whole kekong API process)", 0)
    max_replicas: int = _declared(4, "most replicas Ray Serve scales up to", 1)
    target_ongoing_requests: float = _declared(1.0, "requests under way per replica before Ray Serve adds one "
                                               "(a generation is one job at a time per replica)", 0.1)
    cpus_per_replica: float = _declared(1.0, "CPUs Ray reserves per replica", 0.1)

    def check(self) -> None:
        for info in fields(self):
            value = getattr(self, info.name)
            if value < info.metadata["low"]:
                raise ParameterError(f"--{info.name.replace('_', '-')} {value}: at least {info.metadata['low']:g}")
        if self.max_replicas < max(self.min_replicas, 1):
            raise ParameterError(f"--max-replicas {self.max_replicas}: at least --min-replicas ({self.min_replicas})")

    def autoscaling(self) -> dict[str, Any]:
        return {"min_replicas": self.min_replicas, "initial_replicas": max(self.min_replicas, 1),
                "max_replicas": self.max_replicas, "target_ongoing_requests": self.target_ongoing_requests}


def import_serve() -> Any:
    try:
        from ray import serve
    except ImportError:
        raise KekongError(INSTALL) from None
    return serve


def application(config: ServerConfig, scaling: Scaling | None = None) -> Any:
    """The Ray Serve application: the FastAPI app built in each replica (its own Services and
    worker on the shared store), autoscaled as `scaling` says."""
    serve = import_serve()
    scaling = scaling or Scaling()
    scaling.check()
    shared = replace(config, shared_store=True, ui=False, ray=None)

    def build() -> Any:  # run in each replica: the app, its store and its worker live there
        from kekong.server.app import create_app

        return create_app(shared)

    replica = serve.ingress(build)()
    return serve.deployment(replica, name="kekong", autoscaling_config=scaling.autoscaling(),
                            max_ongoing_requests=max(4, int(4 * scaling.target_ongoing_requests)),
                            ray_actor_options={"num_cpus": scaling.cpus_per_replica}).bind()


def deploy(config: ServerConfig, scaling: Scaling, address: str | None = None, host: str = "127.0.0.1",
           port: int = 8000, blocking: bool = True) -> None:
    """Recover the store once, start Ray Serve's HTTP proxy on host:port and run the application."""
    from kekong.scale.ray_pool import connect
    from kekong.server.store import JobStore

    config.check()
    serve = import_serve()
    JobStore(config.store_dir()).recover()  # before any replica: jobs a dead deployment left running
    connect(address)
    serve.start(http_options={"host": host, "port": port})
    serve.run(application(config, scaling), name="kekong", route_prefix="/", blocking=blocking)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kekong.server.ray_serve",
                                     description="kekong's API as an autoscaled Ray Serve deployment")
    parser.add_argument("--data-dir", type=Path, required=True, help="the job store every replica shares")
    parser.add_argument("--host", default="127.0.0.1", help="address Ray Serve's HTTP proxy listens on")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", action="append", default=None,
                        help="as kekong serve --api-key (KEKONG_API_KEY too); needed beyond loopback")
    parser.add_argument("--ray", default=None, help="auto or ray://HOST:10001 to deploy to a cluster "
                        "(default: Ray started in this process)")
    for info in fields(Scaling):
        parser.add_argument("--" + info.name.replace("_", "-"), type=type(info.default), default=info.default,
                            help=f"{info.metadata['help']} (default {info.default:g})")
    args = parser.parse_args(argv)
    keys = [key for key in (args.api_key or [os.environ.get("KEKONG_API_KEY", "")]) if key]
    config = ServerConfig(host=args.host, port=args.port, api_key=keys[0] if keys else None,
                          more_api_keys=tuple(keys[1:]), data_dir=args.data_dir, ui=False)
    scaling = Scaling(**{info.name: getattr(args, info.name) for info in fields(Scaling)})
    try:
        deploy(config, scaling, None if args.ray in (None, "local") else args.ray, args.host, args.port)
    except KekongError as error:
        parser.exit(2, f"error: {error}\n")
    except KeyboardInterrupt:
        pass
    finally:
        import sys

        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            import_serve().shutdown()
            ray.shutdown()


if __name__ == "__main__":
    main()
