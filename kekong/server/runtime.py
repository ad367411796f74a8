"""The runtime file a running `kekong serve` leaves for this user's `kekong generate` to find it.

One small JSON file per server — pid, port, the address to dial, a random token, kekong's version —
in this user's runtime folder (KEKONG_RUNTIME_DIR, else $XDG_RUNTIME_DIR/kekong, else
$XDG_STATE_HOME/kekong/run or ~/.local/state/kekong/run). The folder is made 0700 and the file
0600 whatever the umask: the token lets whoever reads it use the server's local route, so only
this user may. The file is removed when the server exits; one left by a server that died is
removed by the first CLI that finds it stale. Standard library only: the CLI reads it before
deciding whether to import torch at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

PREFIX = "serve-"
HELLO_CONTEXT = b"kekong-serve-local:"


@dataclass(frozen=True)
class RuntimeEntry:
    """What one server's runtime file says."""

    pid: int
    port: int
    host: str  # the loopback address a client dials
    token: str
    version: str
    path: Path | None = None  # where it was read from (not written)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def runtime_dir() -> Path:
    if os.environ.get("KEKONG_RUNTIME_DIR"):
        return Path(os.environ["KEKONG_RUNTIME_DIR"]).expanduser()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "kekong"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "kekong" / "run"


def dial_host(listen_host: str) -> str | None:
    """The loopback address a local client reaches a server listening on `listen_host` at, or None
    when it listens on one non-loopback address only (then there is no runtime file)."""
    if listen_host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(listen_host)
    except ValueError:
        return None
    if address.is_loopback:
        return listen_host
    if address.is_unspecified:  # 0.0.0.0 / :: listen on loopback too
        return "127.0.0.1" if address.version == 4 else "::1"
    return None


def proof(token: str, nonce: str) -> str:
    """A server's answer to a client's nonce (`/v1/local/hello`): only a holder of the token can make it."""
    return hmac.new(token.encode(), HELLO_CONTEXT + nonce.encode(), hashlib.sha256).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def write(port: int, listen_host: str, token: str, version: str) -> RuntimeEntry | None:
    """Write this process's runtime file (mode 0600) once it listens, and return it; None when the
    server is not reachable over loopback or the folder cannot be written (the server still serves)."""
    host = dial_host(listen_host)
    if host is None:
        return None
    entry = RuntimeEntry(os.getpid(), port, host, token, version)
    folder = runtime_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if folder.stat().st_uid == os.getuid():
            os.chmod(folder, 0o700)
        path = folder / f"{PREFIX}{port}.json"
        temporary = folder / f".{PREFIX}{port}.{os.getpid()}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            os.fchmod(file.fileno(), 0o600)  # the umask may take bits away, never add; this sets exactly 0600
            json.dump({k: v for k, v in asdict(entry).items() if k != "path"}, file)
        os.replace(temporary, path)
    except OSError:
        return None
    return RuntimeEntry(**{**asdict(entry), "path": path})


def remove(entry: RuntimeEntry) -> None:
    """Remove `entry`'s file if it is still the one written (another server may have replaced it)."""
    if entry.path is None:
        return
    current = read(entry.path)
    if current is not None and current.token == entry.token:
        with contextlib.suppress(OSError):
            entry.path.unlink()


def read(path: Path) -> RuntimeEntry | None:
    """The entry in `path`, or None when it is unreadable, malformed, not this user's, or readable by
    others (a file anyone could have written is never trusted)."""
    try:
        info = path.stat()
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            return None
        data = json.loads(path.read_text())
        return RuntimeEntry(int(data["pid"]), int(data["port"]), str(data["host"]), str(data["token"]),
                            str(data.get("version", "")), path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def entries() -> list[RuntimeEntry]:
    """Every server runtime file in this user's folder, newest first."""
    folder = runtime_dir()
    try:
        paths = sorted(folder.glob(f"{PREFIX}*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return []
    return [entry for entry in map(read, paths) if entry is not None]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: not a server of ours
        return False
    return True


def forget(entry: RuntimeEntry) -> None:
    """Remove a stale entry's file."""
    if entry.path is not None:
        with contextlib.suppress(OSError):
            entry.path.unlink()
