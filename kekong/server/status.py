"""A job's status: one enum, its values the strings the API, the SQLite rows and the UI use."""

from __future__ import annotations

from enum import Enum


class JobStatus(str, Enum):
    """queued → running → done | failed | cancelled | interrupted (a restart found it running)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:  # "done", not "JobStatus.DONE", in messages and f-strings
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def finished(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)
