"""How a server runs: where it listens, who may call it, and its limits."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from kekong.declaration import FieldSpec
from kekong.declaration import spec as declared
from kekong.errors import ParameterError
from kekong.request import GenerationRequest
from kekong.scale.bounds import WorkerBounds
from kekong.server.inputs import UrlPolicy

# Each limit → the request fields whose declared upper bound it lowers.
NARROWS: dict[str, tuple[str, ...]] = {
    "max_steps": ("steps", "hr_second_pass_steps"),
    "max_side": ("width", "height", "hr_resize_x", "hr_resize_y", "seed_resize_from_w", "seed_resize_from_h"),
    "max_batch": ("batch_size", "batch_count"),  # images per job (size × count): neither alone passes it
}


def limit_range(limit: str) -> tuple[int, int]:
    """The values a limit may take, from the declaration: a server can only lower a declared bound
    (max_batch counts batch_size × batch_count, so its ceiling is the product of their bounds)."""
    if limit == "max_batch":
        size, count = declared("batch_size"), declared("batch_count")
        return int(size.ge or 1), int(size.le * count.le)
    field = declared(NARROWS[limit][0])
    return int(max(field.ge or 1, 1)), int(field.le)


@dataclass(frozen=True)
class Limits:
    """Bounds on top of the request model's own (they can only lower them)."""

    max_steps: int = int(declared("steps").le)
    max_batch: int = int(declared("batch_size").le)  # images per job: batch_size × batch_count
    max_side: int = int(declared("width").le)
    max_body_bytes: int = 64 * 2**20  # a request body; images arrive base64 inside it

    def spec(self, name: str, model: type[BaseModel] = GenerationRequest) -> FieldSpec:
        """The field's declaration with this server's limits applied (what the UI offers)."""
        declaration = declared(name, model)
        if model is GenerationRequest:
            for limit, names in NARROWS.items():
                if name in names:
                    return declaration.narrowed(getattr(self, limit))
        return declaration

    def check(self, request) -> None:
        """This server's bounds on the declared sizes and on every size derived from them (the hires
        pass, seed resize, batch × pixels), and the files the request names beyond models."""
        from kekong.generation.checks import check_files, check_sizes

        if request.steps > self.max_steps or request.hr_second_pass_steps > self.max_steps:
            raise ParameterError(f"steps: this server allows at most {self.max_steps}")
        if request.batch_size * request.batch_count > self.max_batch:
            raise ParameterError(f"batch_size × n_iter = {request.batch_size * request.batch_count}: this server "
                                 f"makes at most {self.max_batch} images per request")
        try:
            check_sizes(request, self.max_side)
        except ParameterError as error:
            raise ParameterError(f"{error} (this server's limit)") from None
        check_files(request)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 7860
    api_key: str | None = None
    insecure: bool = False  # listen beyond loopback without a key (a warning is printed)
    data_dir: Path | None = None  # job store and outputs; default: KEKONG_DATA_DIR/server
    limits: Limits = field(default_factory=Limits)
    urls: UrlPolicy = field(default_factory=UrlPolicy)
    ui: bool = True
    allowed_hosts: tuple[str, ...] = ()  # extra Host names accepted (behind a reverse proxy)
    allowed_origins: tuple[str, ...] = ()  # extra scheme://host:port origins that may write (--allow-origin)
    body_timeout_s: float = 30.0  # a request body not received in full by then is refused (408)
    max_queue: int = field(default=64, metadata={"help": "most jobs queued or running at once; more are refused "
                                                          "with 429 and Retry-After"})
    keep_jobs_hours: float | None = field(default=None, metadata={
        "help": "delete finished jobs (and their images) this many hours after they finished; default: keep all"})
    max_disk_gb: float | None = field(default=None, metadata={
        "help": "keep the job store (images, inputs, database) under this many GB by deleting the finished jobs "
                "that finished first, never a queued or running one; default: no limit"})
    more_api_keys: tuple[str, ...] = ()  # --api-key given more than once: each caller its own key (fair queue)
    strict: bool = False  # A1111 routes refuse fields kekong does not know (by default: ignored, and named)
    ray: str | None = None  # run jobs on Ray actors: "local" (Ray in this process), "auto", "ray://HOST:PORT"
    ray_pool: WorkerBounds = field(default_factory=WorkerBounds)  # with ray: the actors (one job each at a time)
    shared_store: bool = False  # a Ray Serve replica: other replicas serve the same store (kekong.server.ray_serve)
    local_token: str | None = None  # the runtime file's token: `kekong generate` on this machine (/v1/local/*)

    @property
    def api_keys(self) -> tuple[str, ...]:
        """Every key that may call the server (the queue is fair between them)."""
        return (self.api_key, *self.more_api_keys) if self.api_key else ()

    @classmethod
    def help(cls, name: str) -> str:
        """A setting's help, declared once on its field (the CLI's --help and the README say it)."""
        return cls.__dataclass_fields__[name].metadata["help"]

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def check(self) -> None:
        """Refuse to listen beyond loopback without an API key, unless told --insecure; refuse
        retention and queue settings that make no sense."""
        if self.max_queue < 1:
            raise ParameterError(f"--max-queue {self.max_queue}: at least 1 job must fit in the queue")
        if self.keep_jobs_hours is not None and not self.keep_jobs_hours > 0:
            raise ParameterError(f"--keep-jobs-hours {self.keep_jobs_hours}: must be above 0 (leave it out to keep "
                                 "every job)")
        if self.max_disk_gb is not None and not self.max_disk_gb > 0:
            raise ParameterError(f"--max-disk-gb {self.max_disk_gb}: must be above 0 (leave it out for no limit)")
        if self.ray is not None:  # no actor: every job would wait for one forever; Ray's own errors are tracebacks
            self.ray_pool.check()
        if self.ray is not None:  # the optional extra: said before the server starts, not as a start-up traceback
            from kekong.scale.ray_pool import import_ray

            import_ray()
        if self.more_api_keys and not self.api_key:
            raise ParameterError("more API keys without a first one: pass each with --api-key")
        if any(not key for key in self.api_keys) or len(set(self.api_keys)) != len(self.api_keys):
            raise ParameterError("--api-key: each key must be non-empty and different from the others")
        if not self.loopback and not self.api_key and not self.insecure:
            raise ParameterError(f"refusing to listen on {self.host} without an API key: pass --api-key "
                                 "(or set KEKONG_API_KEY), or --insecure to allow anyone on the network")

    def store_dir(self) -> Path:
        if self.data_dir is not None:
            return Path(self.data_dir)
        from kekong.provenance.marks import data_dir

        return data_dir() / "server"
