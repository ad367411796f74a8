"""The job store: one SQLite file (WAL) that is the server's source of truth.

A job is written before its id is handed out, so a crash never loses an accepted job. Status
moves queued → running → done | failed | cancelled | interrupted. `interrupted` is what a
restart finds of a job that was running when the process died; it can be retried. Each job's
output files live in `<root>/jobs/<id>/` and are listed in its result only once it is done.

A row holds the validated request with its images as `sha256:` references to files in
`<root>/blobs/` (blobs.py), not as base64; a store written before that is migrated when opened.
A blob is deleted with the last job that references it.

The queue is bounded: `submit(max_active=N)` refuses (QueueFull) while N jobs are queued or
running; `sweep(age)` deletes finished jobs older than `age` with their files, and
`sweep_disk(bytes)` the oldest finished ones until the store fits in that many bytes (retention).

The queue is fair between callers: a job carries its `owner` (which API key sent it), and the
next job to run is the oldest one of the owner whose last job started longest ago (an owner
with none yet goes first) — one client's flood of jobs does not hold up another's. With no keys
every job has the same owner and the order is plain first come, first served.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kekong.errors import ParameterError
from kekong.server.blobs import BlobStore
from kekong.server.status import JobStatus

_VERSION = 1  # PRAGMA user_version: 1 = images as blob references
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    idempotency_key TEXT UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    result TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS job_blobs (
    job_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (job_id, sha256)
);
CREATE INDEX IF NOT EXISTS job_blobs_by_sha256 ON job_blobs (sha256);
"""
_ORPHAN_AGE_S = 600  # a blob no row references yet may be a submit under way in another process
_ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


class QueueFull(Exception):
    """The queue holds its most jobs; `retry_after`: seconds until one has probably finished."""

    def __init__(self, active: int, retry_after: int) -> None:
        super().__init__(f"the queue is full ({active} jobs queued or running, this server's --max-queue); "
                         f"retry in about {retry_after} s")
        self.retry_after = retry_after


@dataclass
class Job:
    id: str
    kind: str  # "generate" (native), "txt2img" / "img2img" (A1111 routes)
    payload: dict[str, Any]  # the request fields (images as `sha256:` references) and how to answer
    status: JobStatus
    step: int
    total: int
    error: str | None
    result: dict[str, Any] | None
    created: float
    started: float | None
    finished: float | None
    idempotency_key: str | None = None

    @property
    def retryable(self) -> bool:
        return self.status == JobStatus.INTERRUPTED


class JobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / "jobs.sqlite"
        self.blobs = BlobStore(self.root / "blobs")
        self._lock = threading.Lock()  # one writer at a time inside this process
        with self._lock, self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            columns = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
            for column in ("request_hash", "owner"):  # a store from before them
                if column not in columns:
                    with contextlib.suppress(sqlite3.OperationalError):  # another process added it meanwhile
                        db.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")
            db.execute("CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, started)")
            if db.execute("PRAGMA user_version").fetchone()[0] < _VERSION:
                self._migrate(db)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        connection.row_factory = sqlite3.Row
        try:
            connection.execute("PRAGMA synchronous=FULL")  # an acknowledged job survives power loss
            yield connection
        finally:
            connection.close()

    def output_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def submit(self, kind: str, payload: dict[str, Any], total: int, idempotency_key: str | None = None,
               max_active: int | None = None, owner: str | None = None) -> tuple[Job, bool]:
        """(job, created): with an idempotency key already used for the same request, the existing
        job and False; used for another request, a ParameterError naming the key (the IETF
        Idempotency-Key draft's 422). QueueFull when `max_active` jobs are queued or running (a
        replayed key is still answered). `owner`: who sent it, for the fair order (claim_next)."""
        digest = _request_hash(kind, payload)
        with self._lock, self._connect() as db:
            if idempotency_key is not None:
                row = db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
                if row is not None:
                    if row["request_hash"] not in (None, digest):  # None: a row from before hashes
                        raise ParameterError(f"Idempotency-Key {idempotency_key!r} was used for another request "
                                             f"(job {row['id']}); send a new key with a new request")
                    return _job(row), False
            if max_active is not None:
                active = db.execute(f"SELECT COUNT(*) FROM jobs WHERE status IN ({_marks(_ACTIVE)})",
                                    _ACTIVE).fetchone()[0]
                if active >= max_active:
                    raise QueueFull(active, _retry_after(db))
            job_id = secrets.token_hex(8)
            request, digests = self.blobs.externalize(payload.get("request", {}))
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO jobs (id, idempotency_key, request_hash, kind, payload, status, total, created, "
                       "owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (job_id, idempotency_key, digest, kind, json.dumps({**payload, "request": request}),
                        JobStatus.QUEUED, total, time.time(), owner))
            db.executemany("INSERT INTO job_blobs (job_id, sha256) VALUES (?, ?)",
                           [(job_id, digest) for digest in sorted(digests)])
            db.execute("COMMIT")
        job = self.get(job_id)
        assert job is not None
        return job, True

    def get(self, job_id: str) -> Job | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def list(self, limit: int = 100, offset: int = 0) -> list[Job]:
        """The newest jobs first, skipping the `offset` newest."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY seq DESC LIMIT ? OFFSET ?", (limit, offset)).fetchall()
        return [_job(row) for row in rows]

    def request_fields(self, job: Job) -> tuple[dict[str, Any], dict[str, str]]:
        """(the job's request fields with its images as file paths, path → the fields it is given
        as): what the worker builds the request from, once."""
        return self.blobs.resolve(job.payload["request"])

    def count(self, status: JobStatus) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0]

    def claim_next(self) -> Job | None:
        """The next job in the fair order (the oldest queued job of the owner whose last job started
        longest ago; never started goes first), marked running; None when the queue is empty."""
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT id FROM jobs AS q WHERE status = ? ORDER BY (SELECT MAX(s.started) FROM jobs AS s "
                             "WHERE s.owner IS q.owner) ASC, seq LIMIT 1", (JobStatus.QUEUED,)).fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            db.execute("UPDATE jobs SET status = ?, started = ?, step = 0 WHERE id = ?",
                       (JobStatus.RUNNING, time.time(), row["id"]))
            db.execute("COMMIT")
        return self.get(row["id"])

    def progress(self, job_id: str, step: int, total: int) -> None:
        with self._lock, self._connect() as db:
            db.execute("UPDATE jobs SET step = ?, total = ? WHERE id = ? AND status = ?",
                       (step, total, job_id, JobStatus.RUNNING))

    def finish(self, job_id: str, status: JobStatus, result: dict[str, Any] | None = None, error: str | None = None
               ) -> None:
        with self._lock, self._connect() as db:
            db.execute("UPDATE jobs SET status = ?, result = ?, error = ?, finished = ? WHERE id = ?",
                       (status, json.dumps(result) if result is not None else None, error, time.time(), job_id))

    def cancel_queued(self, job_id: str) -> bool:
        """Cancel a job that has not started; False when it is not queued (any more)."""
        with self._lock, self._connect() as db:
            changed = db.execute("UPDATE jobs SET status = ?, finished = ?, error = ? WHERE id = ? AND status = ?",
                                 (JobStatus.CANCELLED, time.time(), "cancelled before it started", job_id,
                                  JobStatus.QUEUED)).rowcount
        return bool(changed)

    def retry(self, job_id: str) -> bool:
        """Queue an interrupted job again (at the back of the queue)."""
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT * FROM jobs WHERE id = ? AND status = ?",
                             (job_id, JobStatus.INTERRUPTED)).fetchone()
            if row is None:
                db.execute("COMMIT")
                return False
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))  # re-inserted: a new place in the queue
            db.execute("INSERT INTO jobs (id, idempotency_key, request_hash, kind, payload, status, total, created, "
                       "owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (job_id, row["idempotency_key"], row["request_hash"], row["kind"], row["payload"],
                        JobStatus.QUEUED, row["total"], row["created"], row["owner"]))  # job_blobs keeps its rows
            db.execute("COMMIT")
        return True

    def recover(self) -> list[str]:
        """At start-up: jobs left running by a dead process become interrupted and lose any output
        files they had begun; returns their ids."""
        with self._lock, self._connect() as db:
            ids = [row["id"] for row in db.execute("SELECT id FROM jobs WHERE status = ?", (JobStatus.RUNNING,))]
            for job_id in ids:
                db.execute("UPDATE jobs SET status = ?, error = ?, finished = ? WHERE id = ?",
                           (JobStatus.INTERRUPTED,
                            "the server stopped while this job ran; POST …/retry to run it again", time.time(),
                            job_id))
        for job_id in ids:
            shutil.rmtree(self.output_dir(job_id), ignore_errors=True)
        self._sweep_blobs()
        return ids

    def delete(self, job_id: str) -> bool:
        """Remove a finished job: its row, its output files, and every input blob no other job
        references. False when there is no such job or it is still queued or running."""
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or not JobStatus(row["status"]).finished:
                db.execute("COMMIT")
                return False
            digests = [r["sha256"] for r in db.execute("SELECT sha256 FROM job_blobs WHERE job_id = ?", (job_id,))]
            upload = self._upload_of(db, job_id)
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            db.execute("DELETE FROM job_blobs WHERE job_id = ?", (job_id,))
            unused = [d for d in digests
                      if db.execute("SELECT 1 FROM job_blobs WHERE sha256 = ? LIMIT 1", (d,)).fetchone() is None]
            upload_unused = upload is not None and db.execute(
                "SELECT 1 FROM jobs WHERE payload LIKE ? LIMIT 1", (f"%{upload.name}%",)).fetchone() is None
            db.execute("COMMIT")
            for digest in unused:  # under the lock: a submit of the same image waits, then writes it again
                self.blobs.remove(digest)
            if upload_unused:  # a video job's uploaded source goes with the last job that used it
                upload.unlink(missing_ok=True)
        shutil.rmtree(self.output_dir(job_id), ignore_errors=True)
        return True

    def sweep(self, older_than_s: float) -> list[str]:
        """Retention: delete every job that finished more than `older_than_s` ago, with its output
        files and the blobs only it used (never a queued or running one); the ids deleted."""
        cutoff = time.time() - older_than_s
        with self._connect() as db:
            ids = [row["id"] for row in db.execute(
                f"SELECT id FROM jobs WHERE status NOT IN ({_marks(_ACTIVE)}) AND finished < ? ORDER BY seq",
                (*_ACTIVE, cutoff))]
        return [job_id for job_id in ids if self.delete(job_id)]

    def sweep_disk(self, max_bytes: int) -> list[str]:
        """Retention by size: while the store (job files, blobs, the database) takes more than
        `max_bytes`, delete the finished job that finished first, with its files and the blobs only
        it used; never a queued or running one. The ids deleted."""
        used = self.disk_bytes()
        if used <= max_bytes:
            return []
        with self._connect() as db:
            rows = db.execute(f"SELECT id FROM jobs WHERE status NOT IN ({_marks(_ACTIVE)}) ORDER BY finished, seq",
                              _ACTIVE).fetchall()
        deleted = []
        for row in rows:
            if used <= max_bytes:
                break
            freed = self._job_bytes(row["id"])
            if self.delete(row["id"]):
                used -= freed
                deleted.append(row["id"])
        return deleted

    def disk_bytes(self) -> int:
        """What the store takes on disk: every job's files, the blobs, video jobs' uploaded sources,
        the database files."""
        files = [*(self.root / "jobs").rglob("*"), *(self.root / "blobs").rglob("*"), *self.uploads.glob("*"),
                 *self.root.glob("jobs.sqlite*")]
        return sum(_size(path) for path in files)

    @property
    def uploads(self) -> Path:
        """Where video jobs' uploaded sources are kept, by content hash (server.video_jobs writes them)."""
        return self.root / "videos" / "uploads"

    def _upload_of(self, db: sqlite3.Connection, job_id: str) -> Path | None:
        """The uploaded source a video job reads, when it is one of the store's uploads."""
        row = db.execute("SELECT payload FROM jobs WHERE id = ? AND kind = 'video'", (job_id,)).fetchone()
        source = (json.loads(row["payload"]).get("answer", {}).get("video", {}).get("source")) if row else None
        if not source or Path(source).parent != self.uploads:
            return None
        return Path(source)

    def _job_bytes(self, job_id: str) -> int:
        """What deleting the job frees: its output folder, the blobs no other job references, and a
        video job's uploaded source when no other job reads it."""
        with self._connect() as db:
            only = [r["sha256"] for r in db.execute(
                "SELECT sha256 FROM job_blobs WHERE job_id = ? AND sha256 NOT IN "
                "(SELECT sha256 FROM job_blobs WHERE job_id != ?)", (job_id, job_id))]
            upload = self._upload_of(db, job_id)
            if upload is not None and db.execute("SELECT COUNT(*) FROM jobs WHERE payload LIKE ?",
                                                 (f"%{upload.name}%",)).fetchone()[0] > 1:
                upload = None  # another job reads it too: it stays
        stored = self.blobs.stored()
        return sum(_size(p) for p in self.output_dir(job_id).rglob("*")) + sum(_size(stored[d]) for d in only
                                                                               if d in stored) \
            + (_size(upload) if upload is not None else 0)

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Rows from before blob references: their inline images become blobs (once, at open)."""
        db.execute("BEGIN IMMEDIATE")
        for row in db.execute("SELECT id, payload FROM jobs WHERE payload LIKE '%\"data:%'").fetchall():
            payload = json.loads(row["payload"])
            request, digests = self.blobs.externalize(payload.get("request", {}))
            db.execute("UPDATE jobs SET payload = ? WHERE id = ?", (json.dumps({**payload, "request": request}),
                                                                    row["id"]))
            db.executemany("INSERT OR IGNORE INTO job_blobs (job_id, sha256) VALUES (?, ?)",
                           [(row["id"], digest) for digest in sorted(digests)])
        db.execute(f"PRAGMA user_version = {_VERSION}")
        db.execute("COMMIT")

    def _sweep_blobs(self) -> None:
        """Blobs left by a submit that died before its row was written (none is referenced)."""
        with self._lock, self._connect() as db:
            referenced = {row[0] for row in db.execute("SELECT DISTINCT sha256 FROM job_blobs")}
            cutoff = time.time() - _ORPHAN_AGE_S
            for digest, path in self.blobs.stored().items():
                with contextlib.suppress(OSError):
                    if digest not in referenced and path.stat().st_mtime < cutoff:
                        path.unlink()


def _request_hash(kind: str, payload: dict[str, Any]) -> str:
    """What an idempotency key is bound to: the validated request (images included) and how to answer."""
    text = json.dumps({"kind": kind, **payload}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:  # deleted meanwhile
        return 0


def _marks(values: tuple) -> str:
    return ", ".join("?" * len(values))


def _retry_after(db: sqlite3.Connection) -> int:
    """Seconds until a slot frees, from how long recent jobs ran: the running one has a mean job's
    time left at most (at least 1 s, at most 10 min)."""
    rows = db.execute("SELECT finished - started FROM jobs WHERE status = ? AND started IS NOT NULL "
                      "ORDER BY seq DESC LIMIT 20", (JobStatus.DONE,)).fetchall()
    mean = sum(row[0] for row in rows) / len(rows) if rows else 10.0
    return int(min(max(mean, 1.0), 600.0) + 0.999)


def _job(row: sqlite3.Row) -> Job:
    return Job(id=row["id"], kind=row["kind"], payload=json.loads(row["payload"]),
               status=JobStatus(row["status"]),
               step=row["step"], total=row["total"], error=row["error"],
               result=json.loads(row["result"]) if row["result"] else None, created=row["created"],
               started=row["started"], finished=row["finished"], idempotency_key=row["idempotency_key"])
