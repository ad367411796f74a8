"""This installation's register of watermark ids: which image and recipe each id was given to,
so `kekong verify` can turn a recovered id back into how the image was made. It also keeps, for
each recipe written here, the local paths of its inputs and models (which published recipes never
hold), so `kekong replay` on this machine finds them where they were.

One SQLite file in the user's data directory (KEKONG_DATA_DIR, else $XDG_DATA_HOME/kekong, else
~/.local/share/kekong). Ids are random 40-bit numbers; a collision is re-drawn."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kekong.provenance.watermark import ID_BITS


def data_dir() -> Path:
    if os.environ.get("KEKONG_DATA_DIR"):
        return Path(os.environ["KEKONG_DATA_DIR"])
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "kekong"


@contextmanager
def _database() -> Iterator[sqlite3.Connection]:
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(folder / "marks.sqlite", timeout=30)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE IF NOT EXISTS marks (id INTEGER PRIMARY KEY, created REAL, path TEXT, "
                           "recipe TEXT)")
        connection.execute("CREATE TABLE IF NOT EXISTS paths (recipe TEXT PRIMARY KEY, created REAL, paths TEXT)")
        columns = {row[1] for row in connection.execute("PRAGMA table_info(marks)")}
        if "c2pa" not in columns:  # registers made before manifests were recorded: NULL = not known
            connection.execute("ALTER TABLE marks ADD COLUMN c2pa INTEGER")
        with connection:  # one transaction: committed on success
            yield connection
    finally:
        connection.close()


def register(mark_id: int | None, path: str, recipe: dict[str, Any] | None, c2pa: bool | None = None) -> int:
    """Register `path`, its recipe and whether it got a C2PA manifest under `mark_id`, or under a
    fresh id when it is None."""
    insert = "INTO marks (id, created, path, recipe, c2pa) VALUES (?, ?, ?, ?, ?)"
    with _database() as connection:
        if mark_id is not None:
            connection.execute(f"INSERT OR REPLACE {insert}",
                               (mark_id, time.time(), path, json.dumps(recipe) if recipe else None, c2pa))
            return mark_id
        while True:
            mark_id = secrets.randbits(ID_BITS)
            try:
                connection.execute(f"INSERT {insert}",
                                   (mark_id, time.time(), path, json.dumps(recipe) if recipe else None, c2pa))
                return mark_id
            except sqlite3.IntegrityError:
                continue


def look_up(mark_id: int) -> dict[str, Any] | None:
    """{"path", "created", "recipe", "c2pa"} when this installation issued `mark_id`, else None;
    "c2pa" says whether the image was written with a manifest (None: not known)."""
    if not (data_dir() / "marks.sqlite").is_file():
        return None
    with _database() as connection:
        row = connection.execute("SELECT created, path, recipe, c2pa FROM marks WHERE id = ?",
                                 (mark_id,)).fetchone()
    if row is None:
        return None
    return {"created": row[0], "path": row[1], "recipe": json.loads(row[2]) if row[2] else None,
            "c2pa": None if row[3] is None else bool(row[3])}


def recipe_key(recipe: dict[str, Any]) -> str:
    """sha256 of a recipe as published, without its provenance record (added after) or private paths."""
    import hashlib

    from kekong.provenance.recipe import LOCAL_PATHS_KEY

    public = {key: value for key, value in recipe.items() if key not in ("provenance", LOCAL_PATHS_KEY)}
    return hashlib.sha256(json.dumps(public, sort_keys=True).encode()).hexdigest()


def remember_paths(recipe: dict[str, Any], paths: dict[str, str]) -> None:
    """Keep `paths` (field → local path) for `recipe`, on this machine only."""
    if paths:
        with _database() as connection:
            connection.execute("INSERT OR REPLACE INTO paths VALUES (?, ?, ?)",
                               (recipe_key(recipe), time.time(), json.dumps(paths)))


def remembered_paths(recipe: dict[str, Any]) -> dict[str, str]:
    """The local paths kept for `recipe` when this installation wrote it, else {}."""
    if not (data_dir() / "marks.sqlite").is_file():
        return {}
    with _database() as connection:
        row = connection.execute("SELECT paths FROM paths WHERE recipe = ?", (recipe_key(recipe),)).fetchone()
    return json.loads(row[0]) if row else {}


def format_id(mark_id: int) -> str:
    """Ids are shown as 10 hex digits."""
    return f"{mark_id:010x}"


def parse_id(text: str) -> int | None:
    """The id in a recipe's provenance record, or None when the mark was off or not embedded."""
    try:
        return int(text, 16) if len(text) == 10 else None
    except ValueError:
        return None
