"""What a Ray actor pool is made of, declared once: how many workers, and what Ray reserves for
each. `kekong batch`, `grid`, `video`, `generate --prompts-file` and `serve` build their
`--workers`, `--cpus-per-worker` and `--gpus-per-worker` options from these fields (help, default,
bounds), `ServerConfig` holds one, and the pools (`ray_pool.RayPool`, `server.ray_jobs.RayJobs`)
take one."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from kekong.errors import ParameterError

MAX_WORKERS = 1024  # actors one driver hands work to (it dispatches ≈ 50 tasks/s: see BENCHMARKS.md)


def _declared(default: Any, help: str, *, ge: float | None = None, gt: float | None = None,
              le: float | None = None) -> Any:
    return field(default=default, metadata={"help": help, "ge": ge, "gt": gt, "le": le})


@dataclass(frozen=True)
class WorkerBounds:
    workers: int = _declared(2, "Ray actors, each holding its loaded models", ge=1, le=MAX_WORKERS)
    cpus_per_worker: float = _declared(1.0, "CPUs Ray reserves per actor (its torch threads)", gt=0, le=512)
    gpus_per_worker: float = _declared(0.0, "GPUs Ray reserves per actor; the actor takes the CUDA device Ray "
                                       "assigns it", ge=0, le=64)

    @staticmethod
    def flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    @classmethod
    def declared(cls, name: str) -> dict[str, Any]:
        """A field's help, default and bounds (what the CLI options are made from)."""
        info = cls.__dataclass_fields__[name]
        return {**info.metadata, "default": info.default}

    @classmethod
    def build(cls, **given: Any) -> WorkerBounds:
        """From the options the user set (None: the declared default), checked."""
        bounds = cls(**{name: value for name, value in given.items() if value is not None})
        bounds.check()
        return bounds

    def check(self) -> None:
        """Each value within its declared bounds, or a ParameterError naming the flag."""
        for info in fields(self):
            value, rule = getattr(self, info.name), info.metadata
            kind = int if info.type in ("int", int) else float
            wrong = (not isinstance(value, (int, float)) or isinstance(value, bool)
                     or (kind is int and int(value) != value))
            if not wrong and rule["ge"] is not None and value < rule["ge"]:
                wrong = True
            if not wrong and rule["gt"] is not None and not value > rule["gt"]:
                wrong = True
            if not wrong and rule["le"] is not None and value > rule["le"]:
                wrong = True
            if wrong:
                raise ParameterError(f"{self.flag(info.name)} {value}: {self.bounds_text(info.name)}")

    @classmethod
    def bounds_text(cls, name: str) -> str:
        rule = cls.__dataclass_fields__[name].metadata
        whole = "a whole number " if cls.__dataclass_fields__[name].type in ("int", int) else ""
        low = f"at least {rule['ge']:g}" if rule["ge"] is not None else f"above {rule['gt']:g}"
        return f"must be {whole}{low} and at most {rule['le']:g}"

    @property
    def threads(self) -> int:
        """torch threads in each worker: its CPUs, at least one."""
        return max(1, int(self.cpus_per_worker))

    def totals(self) -> tuple[float, float]:
        """(CPUs, GPUs) the whole pool reserves: what a local Ray is started with."""
        return self.workers * self.cpus_per_worker, self.workers * self.gpus_per_worker
